package deliver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	campaignrow "github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// latentTimedSender is timedSender whose sends take latency, as a
// provider's answers do (an instant sender's jobs go in chunks of permits).
type latentTimedSender struct {
	timedSender
	latency time.Duration
}

func (s *latentTimedSender) Send(ctx context.Context, n push.Notification) push.Result {
	r := s.timedSender.Send(ctx, n)
	time.Sleep(s.latency)
	return r
}

// sendsIn counts the sends started in [from, from+d).
func sendsIn(at []time.Time, from time.Time, d time.Duration) int {
	n := 0
	for _, a := range at {
		if !a.Before(from) && a.Before(from.Add(d)) {
			n++
		}
	}
	return n
}

// TestRateChangeWhileSending: a capped campaign's rate changed while two
// deliver processes send it (campaign.SetRate) holds within 1 s in both:
// lowered to a quarter, the sends over a window after it are within the
// new cap (not the old rate's, nor a burst of the entries put off at the
// old rate's slots); raised, the entries put off at the lowered rate's
// slots are called back and it speeds up. The windows start 2 s after the
// change and the bounds are generous: it is the rate, not the timing, that
// is asserted. A deliver that keeps the row's rate it cached sends at the
// old rate throughout. On a cluster too: the campaign's hash, its permits'
// schedule and the delayed sets its entries are called back from are on
// different nodes.
func TestRateChangeWhileSending(t *testing.T) {
	for _, cluster := range []bool{false, true} {
		name := map[bool]string{false: "standalone", true: "cluster"}[cluster]
		t.Run(name, func(t *testing.T) {
			// Side by side: each is 12 s of fixed windows at 10 to 80
			// sends a second on a fixture of its own (the cluster is the
			// package's, a few hundred commands a second at most), so
			// neither slows the other's sends toward its bounds.
			t.Parallel()
			var f *fixture
			if cluster {
				f = newFixtureOn(t, strings.Join(pipelinetest.SharedClusterT(t).Addrs, ","))
			} else {
				f = newFixture(t)
			}
			rateChangeWhileSending(t, f)
		})
	}
}

func rateChangeWhileSending(t *testing.T, f *fixture) {
	const users, rate, low, high = 1000, 40, 10, 80
	const settle, window = 2 * time.Second, 4 * time.Second
	f.seedDevices(users, false)
	f.createCampaign("c1", `{}`)
	if _, err := f.db.Exec(f.ctx, `UPDATE campaigns SET rate_per_second = $1 WHERE id = 'c1'`, rate); err != nil {
		t.Fatal(err)
	}
	f.campaignHash("c1") // paced, its entries put off to their slots
	s := &latentTimedSender{latency: 2 * time.Millisecond}
	cfg := Config{Senders: map[push.Platform]push.Sender{push.IOS: s}}
	f.startStage(cfg, "d1", 30*time.Second)
	f.startStage(cfg, "d2", 30*time.Second)
	f.emitEvery("c1", userRange(users), 10) // 100 entries, 25 s at the cap: most put off
	pipelinetest.Eventually(t, 30*time.Second, "two seconds of sends at the cap", func() bool { return len(s.started()) >= 2*rate })

	if _, err := campaignrow.SetRate(f.ctx, f.rdb, f.db, f.keys, "c1", low); err != nil {
		t.Fatal(err)
	}
	time.Sleep(settle)
	from := time.Now()
	time.Sleep(window)
	// At the old rate: 160. A quarter over the new cap is allowance
	// enough for the limiter's interval and a window's edges.
	if n, most := sendsIn(s.started(), from, window), low*int(window.Seconds())*5/4; n > most {
		t.Errorf("lowered to %d/s: %d sends in %v, want at most %d", low, n, window, most)
	} else {
		t.Logf("lowered to %d/s: %d sends in %v", low, n, window)
	}

	if _, err := campaignrow.SetRate(f.ctx, f.rdb, f.db, f.keys, "c1", high); err != nil {
		t.Fatal(err)
	}
	time.Sleep(settle)
	from = time.Now()
	time.Sleep(window)
	// At the lowered rate: 40; at the raised one 320. Twice the lowered
	// rate is a speed-up any machine makes.
	if n, least := sendsIn(s.started(), from, window), 2*low*int(window.Seconds()); n < least {
		t.Errorf("raised to %d/s: %d sends in %v, want at least %d", high, n, window, least)
	} else {
		t.Logf("raised to %d/s: %d sends in %v", high, n, window)
	}
	if n, most := sendsIn(s.started(), from, window), high*int(window.Seconds())*5/4; n > most {
		t.Errorf("raised to %d/s: %d sends in %v, over the cap (at most %d)", high, n, window, most)
	}
}

// TestRaisedRateCallsBackPutOffEntries: a campaign capped at 5/s has its
// entries put off to slots up to minutes away (here 200 s of them), where
// they wait in the delayed set for up to maxPutOff. Raised, it would go on
// at 5/s until they came back; the deliver that sees the raise calls them
// back (hasten), and they are slotted again at the new rate.
//
// What it asserts is that decision, read in the delayed sets, not how fast
// the sends then go: on a box running other suites beside it (load 15-39 on
// 2 cores) the one stage sent under 80 in the 4 s the new rate has 320 for,
// though every entry had been called back. Slotted again at 80/s, the work
// left ends within latestAt of the raise, so no entry is put off past it;
// not called back, the entries put off at 5/s stay due up to maxPutOff
// after they were put off, which the test checks is past its deadline.
func TestRaisedRateCallsBackPutOffEntries(t *testing.T) {
	t.Parallel() // mostly waiting (fixed windows); it asserts slots, not speed
	const users, rate, high = 1000, 5, 80
	// The devices (8 per 7 users) at the raised rate take 15 s at most,
	// less what was sent; the rest is room for the rounds that slot them.
	const latestAt, wait = 20 * time.Second, 15 * time.Second
	f := newFixture(t)
	f.seedDevices(users, false)
	f.createCampaign("c1", `{}`)
	if _, err := f.db.Exec(f.ctx, `UPDATE campaigns SET rate_per_second = $1 WHERE id = 'c1'`, rate); err != nil {
		t.Fatal(err)
	}
	f.campaignHash("c1")
	s := &latentTimedSender{latency: 2 * time.Millisecond}
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: s}}, "d1", 30*time.Second)
	f.emitEvery("c1", userRange(users), 10)
	pipelinetest.Eventually(t, 30*time.Second, "sends under way, most entries put off", func() bool {
		return len(s.started()) >= rate && f.retriesLeft() >= 50
	})
	raised := time.Now()
	deadline := raised.Add(wait)
	// Not called back, these would still be waiting at the deadline: so a
	// deliver that does not hasten fails below, however slow the box.
	if due := f.latestDue(); due.Before(deadline.Add(latestAt)) {
		t.Fatalf("before the raise the last entry put off is due %v after it, want over %v: nothing to call back", due.Sub(raised).Round(time.Millisecond), wait+latestAt)
	} else {
		t.Logf("before the raise the last entry put off is due %v after it", due.Sub(raised).Round(time.Millisecond))
	}
	if _, err := campaignrow.SetRate(f.ctx, f.rdb, f.db, f.keys, "c1", high); err != nil {
		t.Fatal(err)
	}
	var due time.Time
	ok := func() bool {
		due = f.latestDue()
		return due.Before(time.Now().Add(latestAt))
	}
	for !ok() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if sent := len(s.started()); !ok() {
		t.Errorf("raised from %d/s to %d/s: %v later an entry is still put off until %v from then (%d sent), want none past %v: not called back",
			rate, high, time.Since(raised).Round(time.Millisecond), due.Sub(raised).Round(time.Millisecond), sent, latestAt)
	} else {
		t.Logf("raised from %d/s to %d/s: %v later every entry put off is due within %v (%d sent)",
			rate, high, time.Since(raised).Round(time.Millisecond), latestAt, sent)
	}
}

// latestDue is when the last entry in the deliver streams' delayed sets is
// due (the zero time when there is none).
func (f *fixture) latestDue() time.Time {
	f.t.Helper()
	var latest time.Time
	for p := range f.keys.Partitions {
		zs, err := f.rdb.Do(f.ctx, f.rdb.B().Zrange().Key(pipeline.DelayedKey(f.keys.Stream(pipeline.StreamDeliver, p))).
			Min("-1").Max("-1").Withscores().Build()).AsZScores()
		if err != nil {
			f.t.Fatal(err)
		}
		for _, z := range zs {
			if at := time.UnixMilli(int64(z.Score)); at.After(latest) {
				latest = at
			}
		}
	}
	return latest
}
