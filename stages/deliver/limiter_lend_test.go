package deliver

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// The express lane's share of the cap is a reservation, not its limit: it
// takes the permits the bulk lane leaves unused, so an app sending only
// messages has its whole cap (it had a fifth: 100/s of 500), and the two
// lanes together still keep every one-second window under the cap; when
// both are busy, express keeps at least its share.
//
// What a lane got is counted as the limiter granted it: the permits used,
// and those dropped because a starved taker woke up too late for them
// (TestLimiterCapsEverySlidingWindow does the same). Alone, the express
// lane has a share of 2% (10/s of 500) and must get three times that: on
// its own schedule it could not, so most of what it got is the bulk lane's;
// and 30/s is a quarter of what four takers got on a box at load 30 (113/s
// at the least, 321 to 347/s mostly). It was 60% of the whole cap at the
// default share, which a box at load 15-39 did not always reach. Beside a
// busy bulk lane, at least half its share: on a busy box the limiter
// leaves room for the noise it measures, up to 301 ms a second, so a lane
// that gets all of its share gets 77% of it (74/s of 100 at load 30).
func TestExpressTakesUnusedBulkPermits(t *testing.T) {
	f := newFixture(t)
	const tps, run = 500, 2 * time.Second
	tests := []struct {
		name  string
		share float64  // the express lane's share of tps
		lanes []string // the lanes sending as fast as they can
		want  float64  // the express lane's least permits/s, in shares
	}{
		{"express alone", 0.02, []string{"express"}, 3},
		{"both lanes", DefaultExpressShare, []string{"express", "bulk"}, 0.5},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(Config{Redis: f.rdb, DB: f.db, Keys: f.keys, Senders: map[push.Platform]push.Sender{push.IOS: &NullSender{}},
				TPS: tps, ExpressShare: tt.share, Log: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			app := "lend-" + strconv.Itoa(i) // schedules of its own in Redis
			limiters := map[string]*limiter{"bulk": h.limiter, "express": h.express.limiter}
			for _, l := range limiters { // the lanes share one counter
				l.late = prometheus.NewCounter(prometheus.CounterOpts{Name: "late"})
			}
			logs := map[string]*permitLog{"bulk": {}, "express": {}}
			var all permitLog
			var wg sync.WaitGroup
			ctx, cancel := context.WithTimeout(f.ctx, run)
			defer cancel()
			for _, lane := range tt.lanes {
				l := limiters[lane]
				for range 4 {
					wg.Go(func() {
						for l.wait(ctx, "apns", app) == nil {
							// The permit's time is when wait granted it: read
							// after done, a goroutine paused between the two
							// on a loaded box moved permits into a later
							// window, and the windows counted more than the
							// limiter granted in any.
							now := time.Now()
							l.done(ctx, l.begin("apns", app), "apns", app, push.Result{Outcome: push.Sent, Status: http.StatusOK})
							logs[lane].add(now)
							all.add(now)
						}
					})
				}
			}
			wg.Wait()
			times := all.sorted()
			express := logs["express"].sorted()
			late := testutil.ToFloat64(limiters["express"].late)
			granted := permitRate(express) + late/permitSpan(express).Seconds()
			_, share := h.cfg.laneTPS()
			t.Logf("%d permits in %v (bulk %d, express %d and %.0f late: %.0f/s, its share %d/s); at most %d in a one-second window", len(times), run,
				len(logs["bulk"].times), len(express), late, granted, share, maxInWindow(times, time.Second))
			if most := maxInWindow(times, time.Second); most > tps {
				t.Errorf("%d permits in a one-second window over both lanes, cap %d", most, tps)
			}
			if least := tt.want * float64(share); granted < least {
				t.Errorf("the express lane was granted %.0f permits/s (%d used, %.0f late), want at least %.0f (its share %d/s, the cap %d)",
					granted, len(express), late, least, share, tps)
			}
		})
	}
}

// A refusal for the provider's rate met by the express lane lowers the
// bulk lane's cap too, whose permits it takes: the provider's limit is one
// for both.
func TestExpressRefusalLowersTheLendersCap(t *testing.T) {
	f := newFixture(t)
	const tps = 1000
	h, err := New(Config{Redis: f.rdb, DB: f.db, Keys: f.keys, Senders: map[push.Platform]push.Sender{push.Android: &NullSender{}},
		TPS: tps, Log: zerolog.Nop(), Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	x := h.express.limiter
	for range 20 {
		if err := x.send(f.ctx, "fcm"); err != nil {
			t.Fatal(err)
		}
	}
	gauge := h.metrics.rateCap.WithLabelValues("fcm", testApp, "express")
	if _, share := h.cfg.laneTPS(); testutil.ToFloat64(gauge) != float64(share) {
		t.Errorf("pushpipe_deliver_rate_cap %v before a refusal, want the express share %d", testutil.ToFloat64(gauge), share)
	}
	x.done(f.ctx, time.Now(), "fcm", testApp, push.Result{Outcome: push.Retry, Status: http.StatusTooManyRequests,
		Reason: "QUOTA_EXCEEDED", RetryAfter: 100 * time.Millisecond, Throttled: true})
	bulk, express := h.cfg.laneTPS()
	for _, tt := range []struct {
		lane pipeline.Lane
		tps  int
	}{{pipeline.Bulk, bulk}, {pipeline.Express, express}} {
		key := f.keys.RateLimit(tt.lane.Stream("fcm"), testApp)
		if got := f.limitField(key, "cap"); math.Abs(got-0.7*float64(tt.tps)) > 1 {
			t.Errorf("%s cap %.1f after the express lane's refusal, want about %v", key, got, 0.7*float64(tt.tps))
		}
	}
	// The cap in force, as the metric shows it (the dashboard's panel).
	if got := testutil.ToFloat64(gauge); math.Abs(got-0.7*float64(express)) > 1 {
		t.Errorf("pushpipe_deliver_rate_cap %v after the refusal, want about %v", got, 0.7*float64(express))
	}
}
