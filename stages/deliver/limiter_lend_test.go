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
func TestExpressTakesUnusedBulkPermits(t *testing.T) {
	f := newFixture(t)
	const tps, run = 500, 2 * time.Second
	tests := []struct {
		name  string
		lanes []string // the lanes sending as fast as they can
	}{
		{"express alone", []string{"express"}},
		{"both lanes", []string{"express", "bulk"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(Config{Redis: f.rdb, DB: f.db, Keys: f.keys, Senders: map[push.Platform]push.Sender{push.IOS: &NullSender{}},
				TPS: tps, Log: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			app := "lend-" + strconv.Itoa(i) // schedules of its own in Redis
			limiters := map[string]*limiter{"bulk": h.limiter, "express": h.express.limiter}
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
							l.done(ctx, l.begin("apns", app), "apns", app, push.Result{Outcome: push.Sent, Status: http.StatusOK})
							now := time.Now()
							logs[lane].add(now)
							all.add(now)
						}
					})
				}
			}
			wg.Wait()
			times := all.sorted()
			express := logs["express"].sorted()
			t.Logf("%d permits in %v (bulk %d, express %d); at most %d in a one-second window", len(times), run,
				len(logs["bulk"].times), len(express), maxInWindow(times, time.Second))
			if most := maxInWindow(times, time.Second); most > tps {
				t.Errorf("%d permits in a one-second window over both lanes, cap %d", most, tps)
			}
			_, share := h.cfg.laneTPS()
			switch len(tt.lanes) {
			case 1: // most of the cap, not its share (100/s: 200 in 2 s)
				if rate := permitRate(express); rate < 0.6*tps {
					t.Errorf("express alone took %.0f permits/s, want most of the cap %d (its share is %d)", rate, tps, share)
				}
			default: // at least most of its share
				if rate := permitRate(express); rate < 0.7*float64(share) {
					t.Errorf("express took %.0f permits/s beside a busy bulk lane, want its share %d", rate, share)
				}
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
