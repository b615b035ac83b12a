package split_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/split"
)

// requeuedIn is how long until campaign id's entry is due in the campaigns
// stream's delayed set, and whether it waits there.
func (f *fixture) requeuedIn(id string) (time.Duration, bool) {
	f.t.Helper()
	key := pipeline.DelayedKey(f.keys.Stream(pipeline.StreamCampaigns, f.keys.HashPartition(id)))
	zs, err := f.rdb.Do(context.Background(), f.rdb.B().Zrange().Key(key).Min("0").Max("-1").Withscores().Build()).AsZScores()
	if err != nil {
		f.t.Fatal(err)
	}
	if len(zs) == 0 {
		return 0, false
	}
	return time.Until(time.UnixMilli(int64(zs[0].Score))), true
}

// audience is the campaign's audience as split recorded it, "" if not.
func (f *fixture) audience(id string) string {
	f.t.Helper()
	v, err := f.rdb.Do(context.Background(), f.rdb.B().Hget().Key(f.keys.Campaign(id)).Field(pipeline.CampaignAudience).Build()).ToString()
	if err != nil && !rueidis.IsRedisNil(err) {
		f.t.Fatal(err)
	}
	return v
}

// due makes campaign id's requeued entry due now: time passing.
func (f *fixture) due(id string) {
	f.t.Helper()
	key := pipeline.DelayedKey(f.keys.Stream(pipeline.StreamCampaigns, f.keys.HashPartition(id)))
	zs, err := f.rdb.Do(context.Background(), f.rdb.B().Zrange().Key(key).Min("0").Max("-1").Build()).AsStrSlice()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, m := range zs {
		if err := f.rdb.Do(context.Background(), f.rdb.B().Zadd().Key(key).Xx().ScoreMember().ScoreMember(0, m).Build()).Error(); err != nil {
			f.t.Fatal(err)
		}
	}
}

// pacedTo sets campaign id's schedule (deliver's reservations) to end d
// past Redis's now; d 0 removes it.
func (f *fixture) pacedTo(id string, d time.Duration) {
	f.t.Helper()
	ctx := context.Background()
	cmd := f.rdb.B().Hdel().Key(f.keys.Campaign(id)).Field(pipeline.CampaignPacedMs).Build()
	if d != 0 {
		t, err := f.rdb.Do(ctx, f.rdb.B().Time().Build()).AsIntSlice()
		if err != nil {
			f.t.Fatal(err)
		}
		at := t[0]*1000 + t[1]/1000 + d.Milliseconds()
		cmd = f.rdb.B().Hset().Key(f.keys.Campaign(id)).FieldValue().FieldValue(pipeline.CampaignPacedMs, strconv.FormatInt(at, 10)).Build()
	}
	if err := f.rdb.Do(ctx, cmd).Error(); err != nil {
		f.t.Fatal(err)
	}
}

// TestCappedCampaignIsCutAheadOfItsSends: deliver puts a capped campaign's
// entries off to their slots in its delayed set, which split's backlog mark
// does not count, so split itself keeps a capped campaign cut only
// PacedAhead ahead of its sends. A call cuts what the cap sends in
// PacedAhead (here 8 s at 12/s: 96 subscribers, one range of 100) and
// requeues the campaign half of PacedAhead later; while deliver's
// schedule reaches more than half of PacedAhead past now it cuts nothing and
// comes back when it is half; and the campaign is still cut whole, every
// range once.
func TestCappedCampaignIsCutAheadOfItsSends(t *testing.T) {
	f := newFixture(t)
	f.subscribe("ch", upTo(1000))
	f.run(split.Config{RangeSize: 100, Segments: 1, PacedAhead: 20 * time.Second})
	if _, _, err := campaign.Create(context.Background(), f.rdb, f.db, f.keys,
		campaign.Campaign{ID: "c", App: "a", Channels: []string{"ch"}, Title: "t", RatePerSecond: 5}); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 10*time.Second, "the campaign requeued", func() bool { _, ok := f.requeuedIn("c"); return ok })
	in, _ := f.requeuedIn("c")
	if n := len(f.ranges("c")); n != 1 || in <= 5*time.Second || in > 10*time.Second {
		t.Fatalf("after the first call: %d ranges and back in %v, want 1 range and back in 5-10s", n, in)
	}
	// Its progress goes by its audience, counted once split left it
	// unfinished: the one range's 100 targets are a tenth of it.
	if got := f.audience("c"); got != "1000" {
		t.Fatalf("audience %q after the first call, want 1000", got)
	}
	// Its requeued entry is the very entry a scheduled campaign waits as
	// until send_at: with PostgreSQL down, the report from Redis alone
	// called it scheduled, at its next call's time.
	rep, _ := campaign.RedisProgress(context.Background(), f.rdb, f.keys, "c", errors.New("PostgreSQL down"))
	if rep.State != campaign.StateSplitting || rep.SendAt != nil {
		t.Fatalf("from Redis alone while it is cut ahead: state %q, send_at %v; want splitting, none", rep.State, rep.SendAt)
	}

	// deliver reserved two minutes of sends: the next call cuts nothing
	// and comes back when 10 s are left.
	f.pacedTo("c", 2*time.Minute)
	f.due("c")
	pipelinetest.Eventually(t, 10*time.Second, "the campaign requeued for later", func() bool {
		in, ok := f.requeuedIn("c")
		return ok && in > 100*time.Second
	})
	if in, _ := f.requeuedIn("c"); in > 110*time.Second || len(f.ranges("c")) != 1 {
		t.Fatalf("with two minutes reserved: %d ranges and back in %v, want 1 range and back within 110s", len(f.ranges("c")), in)
	}

	// The sends caught up: it goes on to the end, a range a call.
	f.pacedTo("c", 0)
	pipelinetest.Eventually(t, 30*time.Second, "split done", func() bool {
		f.due("c")
		return f.splitDone("c")
	})
	f.rangesOnce("c", 11)
}

// TestUncappedCampaignIsCutAtOnce: the allowance is the capped campaigns'
// alone; an uncapped one is cut in one call, never requeued.
func TestUncappedCampaignIsCutAtOnce(t *testing.T) {
	f := newFixture(t)
	f.subscribe("ch", upTo(1000))
	f.run(split.Config{RangeSize: 100, Segments: 1, PacedAhead: 8 * time.Second})
	f.create("c", "ch")
	pipelinetest.Eventually(t, 10*time.Second, "split done", func() bool { return f.splitDone("c") })
	if _, ok := f.requeuedIn("c"); ok || len(f.ranges("c")) != 11 {
		t.Fatalf("%d ranges, requeued %v: want 11 ranges in one call", len(f.ranges("c")), ok)
	}
	if got := f.audience("c"); got != "" {
		t.Fatalf("audience %q counted for a campaign cut in one call", got)
	}
}

// TestExpiredCappedCampaignIsCutAtOnce: past its expiry a capped campaign's
// devices are failed unsent by deliver, so split does not pace them: the
// rest of the campaign is cut in one call.
func TestExpiredCappedCampaignIsCutAtOnce(t *testing.T) {
	f := newFixture(t)
	f.subscribe("ch", upTo(1000))
	c, _, err := campaign.Create(context.Background(), f.rdb, f.db, f.keys,
		campaign.Campaign{ID: "c", App: "a", Channels: []string{"ch"}, Title: "t", RatePerSecond: 5, TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(c.ExpiresAt()))
	f.run(split.Config{RangeSize: 100, Segments: 1, PacedAhead: 20 * time.Second})
	pipelinetest.Eventually(t, 10*time.Second, "split done", func() bool { return f.splitDone("c") })
	if _, ok := f.requeuedIn("c"); ok || len(f.ranges("c")) != 11 {
		t.Fatalf("%d ranges, requeued %v: want 11 ranges in one call", len(f.ranges("c")), ok)
	}
}

// TestCutAheadFollowsTheRate: a capped campaign's rate changed while split
// cuts it (campaign.SetRate) sets what the next call cuts: split reads the
// record at each call. At 5/s an allowance of 20 s is one range of 100;
// raised to 20/s, four; its cap removed, the rest at once.
func TestCutAheadFollowsTheRate(t *testing.T) {
	f := newFixture(t)
	f.subscribe("ch", upTo(1000))
	f.run(split.Config{RangeSize: 100, Segments: 1, PacedAhead: 20 * time.Second})
	ctx := context.Background()
	if _, _, err := campaign.Create(ctx, f.rdb, f.db, f.keys,
		campaign.Campaign{ID: "c", App: "a", Channels: []string{"ch"}, Title: "t", RatePerSecond: 5}); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 10*time.Second, "the campaign requeued", func() bool { _, ok := f.requeuedIn("c"); return ok })
	if n := len(f.ranges("c")); n != 1 {
		t.Fatalf("first call at 5/s: %d ranges, want 1", n)
	}
	if _, err := campaign.SetRate(ctx, f.rdb, f.db, f.keys, "c", 20); err != nil {
		t.Fatal(err)
	}
	f.due("c")
	pipelinetest.Eventually(t, 10*time.Second, "the second call", func() bool { return len(f.ranges("c")) > 1 })
	pipelinetest.Eventually(t, 10*time.Second, "the campaign requeued again", func() bool { _, ok := f.requeuedIn("c"); return ok })
	if n := len(f.ranges("c")); n != 5 {
		t.Fatalf("second call at 20/s: %d ranges in all, want 1+4", n)
	}
	if _, err := campaign.SetRate(ctx, f.rdb, f.db, f.keys, "c", 0); err != nil {
		t.Fatal(err)
	}
	f.due("c")
	pipelinetest.Eventually(t, 10*time.Second, "split done", func() bool { return f.splitDone("c") })
	f.rangesOnce("c", 11)
}
