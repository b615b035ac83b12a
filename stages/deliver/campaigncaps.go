package deliver

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
)

// campaignProvider names the campaign caps' schedules in
// Keys.RateLimit(campaignProvider, campaign id).
const campaignProvider = "campaign"

// campaignIdle is how long a campaign's cap goes unasked (no send of the
// campaign at that rate waits for a permit, none is waiting) before this
// process lets go of its limiter. Nothing is lost: the schedule is in
// Redis, and the permits a bucket holds are for slots at most its ahead
// (3 s at 1/s) from when they were granted, dropped as late well before
// this. The next send of the campaign makes a limiter again.
const campaignIdle = 10 * time.Second

// campaignRates are the campaigns' own caps: one GCRA schedule per capped
// campaign, shared by every deliver process like the provider caps, taken
// before the provider's permit (a send needs both). A limiter is made per
// campaign and rate. A campaign whose rate changed takes its permits from
// the new rate's limiter, on the same schedule in Redis (the bucket's key
// is the campaign's, whatever the rate): its next slot is where the old
// rate left it, at most a few permits' ahead (the limiter's ahead), and
// the ones after it are the new rate's interval apart. Lowered, it does
// not burst; raised, it does not wait out the old rate's schedule. The
// permits the old limiter's bucket had granted this process and not used
// are left (they lapse), and so is the old limiter, after campaignIdle.
//
// It holds the caps of the campaigns sent in the last campaignIdle only:
// a long-lived deliver sees campaigns of many rates, and rates changed many
// times, and would otherwise keep a limiter for each, for its whole life.
type campaignRates struct {
	rdb  rueidis.Client
	keys pipeline.Keys
	log  zerolog.Logger
	late prometheus.Counter
	// idle is campaignIdle, a field so that a test watches a cap let go
	// in a second or two rather than in 15.
	idle time.Duration

	mu    sync.Mutex
	caps  map[capKey]*campaignCap
	swept time.Time // when caps were last swept of idle ones
}

type capKey struct {
	campaign string
	rate     int
}

// campaignCap is one campaign's cap at one rate in this process.
type campaignCap struct {
	l       *limiter
	b       *bucket
	used    time.Time    // the last wait's start; under campaignRates.mu
	waiting atomic.Int32 // waits in progress: never let go meanwhile
}

// wait blocks until one send of c may start under the cap rate (at once
// for none, 0).
func (cr *campaignRates) wait(ctx context.Context, c *campaign, rate int) error {
	if rate <= 0 {
		return nil
	}
	now := time.Now()
	cr.mu.Lock()
	k := capKey{c.ID, rate}
	cc := cr.caps[k]
	if cc == nil {
		l := newLimiter(cr.rdb, cr.keys, pipeline.Bulk, rate, cr.log, cr.late)
		cc = &campaignCap{l: l, b: l.bucket(campaignProvider, c.ID)}
		// A campaign's schedule is not a connection being opened: the
		// provider permit taken next does the warming up.
		cc.b.warm.Store(true)
		cr.caps[k] = cc
	}
	cc.used = now
	cc.waiting.Add(1)
	if now.Sub(cr.swept) >= cr.idle/4 {
		cr.sweep(now)
	}
	cr.mu.Unlock()
	defer cc.waiting.Add(-1)
	return cc.l.permit(ctx, cc.b)
}

// sweep lets go of the caps not asked for cr.idle and not waited on; under
// cr.mu. Every wait may sweep, a quarter of cr.idle apart: a cap is let go
// of within 1.25 × cr.idle of its last wait.
func (cr *campaignRates) sweep(now time.Time) {
	cr.swept = now
	for k, cc := range cr.caps {
		if now.Sub(cc.used) >= cr.idle && cc.waiting.Load() == 0 {
			delete(cr.caps, k)
		}
	}
}

// held is how many campaign caps (each its limiter) the process holds.
func (cr *campaignRates) held() int {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return len(cr.caps)
}
