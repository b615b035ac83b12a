package webhook

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// failingEvery is how often, while the receiver keeps failing, the log
// says it still does.
const failingEvery = 30 * time.Second

// failing keeps the log to a few lines while the receiver fails: every
// handler's every delivery that ran out of attempts logged its own
// warning, ~300 a minute with a receiver answering 500, beside the
// runner's dead letters. Now the first failure is logged, then one line
// every failingEvery with how many deliveries failed, then one when a POST
// is accepted again.
type failing struct {
	log    zerolog.Logger
	now    func() time.Time
	mu     sync.Mutex
	since  time.Time // zero while the receiver accepts
	said   time.Time
	first  time.Time // the first failure the counts below count
	failed int       // deliveries failed since the last end said
	events int       // their events (counted again on each redelivery)
	// loud is whether this spell said anything (its start, or that the
	// receiver still fails): only then is its end said. One that starts
	// within failingEvery of the last one's end (a receiver refusing one
	// batch among many it accepts) starts quietly, so that it is not a
	// start and an end line at each failure; its counts go on, and one
	// line every failingEvery still says them.
	loud  bool
	ended time.Time

	// record and clear, when set, keep the failure in Redis for status
	// (failing_record.go): at its start, every failingEvery while it goes
	// on, and at its end.
	record      func(Failure)
	clear       func()
	recorded    time.Time
	clearedOnce bool // clear ran in this process's life
}

// fail notes a delivery of events that ran out of attempts with err.
func (f *failing) fail(err error, events int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if f.failed == 0 {
		f.first = now
	}
	f.failed++
	f.events += events
	if f.record != nil && (f.since.IsZero() || now.Sub(f.recorded) >= failingEvery) {
		f.recorded = now
		f.record(Failure{Since: f.first, Failed: f.failed, Err: err.Error()})
	}
	if f.since.IsZero() {
		f.since = now
		if f.ended.IsZero() || now.Sub(f.ended) >= failingEvery {
			f.said, f.loud = now, true
			f.log.Warn().Err(err).Int("events", events).
				Msg("webhook delivery failed; left for redelivery after --claim-idle, dead-lettered after --max-deliveries (quiet now; one line every 30s while the receiver fails)")
			return
		}
		f.loud = false
	}
	if now.Sub(f.said) >= failingEvery {
		f.said, f.loud = now, true
		f.log.Warn().Err(err).Str("for", now.Sub(f.first).Round(time.Second).String()).Int("failed_deliveries", f.failed).
			Int("events", f.events).Msg("webhook receiver still failing")
	}
}

// ok notes a POST the receiver accepted, which ends a failure.
func (f *failing) ok() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.since.IsZero() {
		if f.clear != nil && !f.clearedOnce {
			// A process that stopped while its receiver failed left the
			// failure recorded; this one's first accepted POST ends it.
			f.clearedOnce = true
			f.clear()
		}
		return
	}
	now := f.now()
	f.since, f.ended = time.Time{}, now
	if f.clear != nil {
		f.clearedOnce = true
		f.clear()
	}
	if !f.loud {
		return // the counts go on into the next spell's lines
	}
	f.log.Warn().Str("after", now.Sub(f.first).Round(time.Second).String()).Int("failed_deliveries", f.failed).
		Msg("webhook receiver accepts again")
	f.failed, f.events = 0, 0
}
