package pipeline

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"
)

// Readiness (OpsHandler's /readyz). For the API it means Redis answered a
// PING within the last second (RedisReady), so a device write would be
// accepted; for a stage, Redis answers, PostgreSQL too if the stage queries
// it (PostgresReady), and its runners consume. The API leaves PostgreSQL out
// on purpose: device writes, its bulk, do not need it, and requests that do
// answer 503 themselves. Not ready is a 503: a load balancer sends the
// process no traffic meanwhile, and nothing restarts it.
//
// The port is unauthenticated, so a 503 names each part that is not ready
// and its state in fixed words ("redis: down"), never the error: that named
// the server's address and host ("dial tcp 10.0.3.7:6379: connection
// refused") to whoever reached the port. The error goes to the log, once
// when the answer changes and then once a minute, not once per probe.

// NotReady is a part of a process that is not ready. Part and State are what
// /readyz shows; Err is the detail, for the log only.
type NotReady struct {
	Part  string // "redis", "postgresql", a stage's name
	State string // "down", "starting"
	Err   error
}

func (e *NotReady) Error() string {
	if e.Err == nil {
		return e.Part + ": " + e.State
	}
	return e.Part + ": " + e.State + ": " + e.Err.Error()
}

func (e *NotReady) Unwrap() error { return e.Err }

// notReadyText is what /readyz answers for err: one "part: state" line per
// NotReady in it (errors.Join of several included), and nothing of any other
// error, whose text may name anything.
func notReadyText(err error) string {
	var b strings.Builder
	b.WriteString("not ready\n")
	var walk func(error)
	walk = func(err error) {
		if nr, ok := err.(*NotReady); ok {
			b.WriteString(nr.Part + ": " + nr.State + "\n")
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return b.String()
}

// Log pacing of /readyz: a change of answer is logged at once unless the
// last line is younger than readyLogGap (a flapping dependency), the same
// answer again once readyLogEvery has passed.
const (
	readyLogGap   = 5 * time.Second
	readyLogEvery = time.Minute
)

// readyz serves /readyz and logs what it hides.
type readyz struct {
	ready func(context.Context) error
	log   zerolog.Logger
	mu    sync.Mutex
	text  string    // the answer last logged ("" for ready)
	at    time.Time // when it was logged
}

func newReadyz(ready func(context.Context) error, log zerolog.Logger) *readyz {
	return &readyz{ready: ready, log: log}
}

func (z *readyz) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var err error
	if z.ready != nil {
		err = z.ready(ctx)
	}
	if err == nil {
		z.note("", nil)
		w.Write([]byte("ready\n"))
		return
	}
	text := notReadyText(err)
	z.note(text, err)
	http.Error(w, strings.TrimSuffix(text, "\n"), http.StatusServiceUnavailable)
}

// note logs the answer text (err its detail) when the log should hear of it.
func (z *readyz) note(text string, err error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	now := time.Now()
	since := now.Sub(z.at)
	changed := text != z.text
	if due := changed && since >= readyLogGap || !changed && text != "" && since >= readyLogEvery; !due {
		return
	}
	z.text, z.at = text, now
	if err == nil {
		z.log.Info().Msg("ready")
		return
	}
	z.log.Warn().Err(err).Msg("not ready")
}

// RedisReady is a readiness check (for OpsHandler): Redis answers a PING
// within half a second. The answer is kept for a second, so Redis sees at
// most one PING a second however often /readyz is probed, and a stopped
// Redis shows within a second and a half.
func RedisReady(rdb rueidis.Client) func(context.Context) error {
	return cachedCheck("redis", func(ctx context.Context) error { return rdb.Do(ctx, rdb.B().Ping().Build()).Error() })
}

// PostgresReady is RedisReady for PostgreSQL, for the stages that query it
// (pipeline.Stages' DB): the pool hands out a connection that answers a
// ping. ping is (*pgxpool.Pool).Ping.
func PostgresReady(ping func(context.Context) error) func(context.Context) error {
	return cachedCheck("postgresql", ping)
}

// cachedCheck runs check at most once a second, within half a second, and
// shares its answer with every prober meanwhile. A failure is a *NotReady
// of part name, state "down".
func cachedCheck(name string, check func(context.Context) error) func(context.Context) error {
	var (
		mu   sync.Mutex
		at   time.Time
		last error
	)
	return func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if !at.IsZero() && time.Since(at) < time.Second {
			return last
		}
		// Not cut short by the prober going away: the answer is shared.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 500*time.Millisecond)
		defer cancel()
		// The answer is as old as the question: stamped when the check
		// returned, a slow "ready" was shared up to its 500 ms longer.
		asked := time.Now()
		last = check(ctx)
		if last != nil {
			last = &NotReady{Part: name, State: "down", Err: last}
		}
		at = asked
		return last
	}
}

// AllReady runs every check and joins what is not ready, so /readyz names
// every part that is down, not only the first.
func AllReady(checks ...func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		var errs []error
		for _, check := range checks {
			errs = append(errs, check(ctx))
		}
		return errors.Join(errs...)
	}
}
