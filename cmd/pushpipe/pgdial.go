package main

import (
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// deadPeerAfter is how soon a connection to a PostgreSQL server that
// vanished fails: a failover whose old primary dropped off the network
// without closing its sockets, a lost NAT mapping, a host powered off.
// Nothing comes back then, neither an answer nor a reset, and a query in
// flight waits on the kernel: with Go's default keepalives (15 s idle, nine
// probes 15 s apart) 2.5 minutes when the query reached the server, and
// when it did not (it waits unacknowledged) the retransmissions' 15
// minutes. All that while a stage's batch stays in hand, kept claimed so
// that no other process takes it, and the new primary goes unused. 30 s
// is far past any acknowledgement a live server's kernel gives, however
// busy PostgreSQL is (it acknowledges a long query's keepalives too).
const deadPeerAfter = 30 * time.Second

// pgDialer dials PostgreSQL over TCP with keepalives that find a vanished
// server within deadPeerAfter while a query waits for its answer (idle 10 s,
// then 4 probes 5 s apart), and TCP_USER_TIMEOUT, which finds it when what
// was sent is never acknowledged (where the kernel sends no keepalives).
// connectTimeout is the URL's connect_timeout, 0 for none: the dialer
// replaces pgx's, which applied it.
func pgDialer(connectTimeout time.Duration) pgconn.DialFunc {
	d := &net.Dialer{
		Timeout: connectTimeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable:   true,
			Idle:     10 * time.Second,
			Interval: 5 * time.Second,
			Count:    4,
		},
		Control: userTimeout(deadPeerAfter),
	}
	return d.DialContext
}
