package main

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// TestDBFindsAVanishedServer: a process's PostgreSQL connections carry the
// socket options that fail a query to a server gone from the network within
// deadPeerAfter (a failover's old primary): pgx's own dialer left Go's
// defaults (keepalive after 15 s idle, nine probes 15 s apart, no user
// timeout: 2.5 minutes, or 15 when the query was never acknowledged).
// The kernel does the rest, so the test reads back what it was told.
func TestDBFindsAVanishedServer(t *testing.T) {
	g := &Globals{DatabaseURL: pipelinetest.MigratedDatabaseT(t, env.Postgres)}
	pool, err := g.DB(1)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	c, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	tcp, ok := c.Conn().PgConn().Conn().(*net.TCPConn)
	if !ok {
		t.Fatalf("the connection is a %T, want TCP (the test's URL is 127.0.0.1)", c.Conn().PgConn().Conn())
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		level, opt int
		want       int
	}{
		{"TCP_USER_TIMEOUT (ms)", unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(deadPeerAfter.Milliseconds())},
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE (s)", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 10},
		{"TCP_KEEPINTVL (s)", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 5},
		{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 4},
	}
	for _, tt := range tests {
		var got int
		var gerr error
		if err := raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), tt.level, tt.opt) }); err != nil {
			t.Fatal(err)
		}
		if gerr != nil {
			t.Errorf("%s: %v", tt.name, gerr)
		} else if got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, got, tt.want)
		}
	}
}
