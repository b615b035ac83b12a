package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"
)

// outageEvery is how often a runner repeats, while Redis stays unreachable
// (or batches keep failing), that it still is.
const outageEvery = 30 * time.Second

// spellSettle is how long after its last failure a spell may end: one
// poison batch retried among batches that succeed would otherwise start
// and end a spell at each retry, two lines where there was one.
const spellSettle = 5 * time.Second

// outage keeps a runner's log readable through a spell of failures: Redis
// unreachable (redisOutage), or batches failing in the handler
// (handlerFailures).
//
// For Redis: Every
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
	words spellWords
	// on is set during a spell: the end check on every batch is one
	// atomic load, no lock.
	on    atomic.Bool
	mu    sync.Mutex
	since time.Time // zero while things work
	said  time.Time // when the spell was last logged
	last  time.Time // the last failure
	ok    bool      // a call succeeded since the last failure
	calls int       // calls failed since
	// counts tells quiet which errors are its to count; nil: all of them.
	counts func(error) bool
}

// spellWords are what an outage says when it starts, while it lasts and
// when it ends.
type spellWords struct{ start, still, end string }

// redisOutage is the runner's note of Redis being unreachable, for its
// own Redis calls.
func redisOutage(log zerolog.Logger) *outage {
	return &outage{log: log, now: time.Now, counts: unreachable, words: spellWords{
		start: "Redis unreachable: the stage waits and retries (quietly; it says when Redis answers again)",
		still: "Redis still unreachable",
		end:   "Redis answers again; the stage goes on where it was",
	}}
}

// handlerFailures is the runner's note of batches failing in the handler
// (PostgreSQL down, a provider refusing): each batch's each retry was a
// warning, ~300 a minute per deliver process with PostgreSQL stopped.
func handlerFailures(log zerolog.Logger) *outage {
	return &outage{log: log, now: time.Now, words: spellWords{
		start: "batch failed, retrying (quiet now: one line every 30s while batches keep failing, and one when they succeed again)",
		still: "batches still failing",
		end:   "batches succeed again",
	}}
}

// quiet notes err and reports whether the caller should leave it out of the
// log: true for an error of the spell (it logs it, once), false for
// anything else.
func (o *outage) quiet(err error) bool {
	if err == nil || o.counts != nil && !o.counts(err) {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	o.calls++
	o.last, o.ok = now, false
	switch {
	case o.since.IsZero():
		o.since, o.said = now, now
		o.on.Store(true)
		o.log.Warn().Err(err).Msg(o.words.start)
	case now.Sub(o.said) >= outageEvery:
		o.said = now
		o.log.Warn().Err(err).Str("for", now.Sub(o.since).Round(time.Second).String()).Int("failed_calls", o.calls).
			Msg(o.words.still)
	}
	return true
}

// answered notes that a call succeeded. It ends the spell once
// spellSettle has passed since the last failure; a pipeline that then has
// nothing more to do ends it on the next settle.
func (o *outage) answered() {
	if !o.on.Load() {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ok = true
	o.end()
}

// settle ends a spell whose last failure is spellSettle old and that a
// success followed: the runner's maintenance tick calls it, for the
// spells no later success would end.
func (o *outage) settle() {
	if !o.on.Load() {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.end()
}

func (o *outage) end() {
	if o.since.IsZero() || !o.ok || o.now().Sub(o.last) < spellSettle {
		return
	}
	o.log.Warn().Str("after", o.now().Sub(o.since).Round(time.Second).String()).Int("failed_calls", o.calls).
		Msg(o.words.end)
	o.since, o.calls, o.ok = time.Time{}, 0, false
	o.on.Store(false)
}

// unreachable tells a failure to reach Redis (refused, reset, timed out,
// or Redis still loading its data after a restart) from an answer of
// Redis's own, wrapped or not: rueidis.IsRedisErr sees only an unwrapped
// one, and a wrapped WRONGTYPE or NOGROUP read as an outage was retried
// for good, and quietly.
func unreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || rueidis.IsRedisNil(err) {
		return false
	}
	if re := (*rueidis.RedisError)(nil); errors.As(err, &re) {
		return re.IsLoading() || re.IsClusterDown() || re.IsTryAgain()
	}
	return true
}
