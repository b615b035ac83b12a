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
	failed int // deliveries failed since
	events int // their events (counted again on each redelivery)
}

// fail notes a delivery of events that ran out of attempts with err.
func (f *failing) fail(err error, events int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	f.failed++
	f.events += events
	switch {
	case f.since.IsZero():
		f.since, f.said = now, now
		f.log.Warn().Err(err).Int("events", events).
			Msg("webhook delivery failed; left for redelivery after --claim-idle, dead-lettered after --max-deliveries (quiet now; one line every 30s while the receiver fails)")
	case now.Sub(f.said) >= failingEvery:
		f.said = now
		f.log.Warn().Err(err).Str("for", now.Sub(f.since).Round(time.Second).String()).Int("failed_deliveries", f.failed).
			Int("events", f.events).Msg("webhook receiver still failing")
	}
}

// ok notes a POST the receiver accepted, which ends a failure.
func (f *failing) ok() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.since.IsZero() {
		return
	}
	f.log.Warn().Str("after", f.now().Sub(f.since).Round(time.Second).String()).Int("failed_deliveries", f.failed).
		Msg("webhook receiver accepts again")
	f.since, f.failed, f.events = time.Time{}, 0, 0
}
