package pipeline

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"
)

// outageEvery is how often a runner repeats, while Redis stays unreachable,
// that it still is.
const outageEvery = 30 * time.Second

// outage keeps a runner's log readable while Redis is unreachable. Every
// read loop (one per lane and partition), claim poller and kept batch
// retries on its own, and each logged each failure: a 10 s Redis restart
// wrote ~1,300 lines per deliver process and ~300 per idle stage, burying
// the one fact an operator needs. Now the first connection failure is
// logged, then one line every outageEvery while it lasts, then one when
// Redis answers again, saying for how long and how many calls failed.
// Errors that Redis itself answered (WRONGTYPE, NOSCRIPT, ...) are not an
// outage and are logged by the caller as before. Only the runner's own
// Redis calls go through it: a handler's error may be PostgreSQL's or a
// provider's, and a dial error does not say whose.
type outage struct {
	log   zerolog.Logger
	now   func() time.Time
	mu    sync.Mutex
	since time.Time // zero while Redis answers
	said  time.Time // when the outage was last logged
	calls int       // calls failed since
}

// quiet notes err and reports whether the caller should leave it out of the
// log: true for a connection failure (the outage logs it, once), false for
// anything else.
func (o *outage) quiet(err error) bool {
	if !unreachable(err) {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	o.calls++
	switch {
	case o.since.IsZero():
		o.since, o.said = now, now
		o.log.Warn().Err(err).Msg("Redis unreachable: the stage waits and retries (quietly; it says when Redis answers again)")
	case now.Sub(o.said) >= outageEvery:
		o.said = now
		o.log.Warn().Err(err).Str("for", now.Sub(o.since).Round(time.Second).String()).Int("failed_calls", o.calls).
			Msg("Redis still unreachable")
	}
	return true
}

// answered notes that a call to Redis succeeded, which ends an outage.
func (o *outage) answered() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.since.IsZero() {
		return
	}
	o.log.Warn().Str("after", o.now().Sub(o.since).Round(time.Second).String()).Int("failed_calls", o.calls).
		Msg("Redis answers again; the stage goes on where it was")
	o.since, o.calls = time.Time{}, 0
}

// unreachable tells a failure to reach Redis (refused, reset, timed out,
// or Redis still loading its data after a restart) from an answer of
// Redis's own.
func unreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || rueidis.IsRedisNil(err) {
		return false
	}
	if re, ok := rueidis.IsRedisErr(err); ok {
		return re.IsLoading() || re.IsClusterDown() || re.IsTryAgain()
	}
	return true
}
