package deliver

import (
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	campaignrow "github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// TestDonePaceReadings: counting users done keeps the two latest readings
// of the partition's targets done, a new one once the newest is as old as
// the interval, and a redone round (nobody newly done) takes none. The
// campaign's report reads its recent pace from them.
func TestDonePaceReadings(t *testing.T) {
	f := newFixture(t)
	const p = 1
	newHandler := func(every time.Duration) *Handler {
		h, err := New(Config{Redis: f.rdb, DB: f.db, Keys: f.keys, Senders: map[push.Platform]push.Sender{push.IOS: &NullSender{}}, donePaceEvery: every})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	c := &campaign{ID: "c1", App: testApp, ttl: time.Hour}
	f.createCampaign(c.ID, `{}`)
	f.upstreamDone(c.ID, 10)
	settle := func(h *Handler, c *campaign, users ...int64) {
		t.Helper()
		targets := make([]target, len(users))
		s := settlement{done: make([]int64, len(users)), bare: make([]bool, len(users)), failed: make([][]device, len(users)), reasons: make([]string, len(users))}
		for i, u := range users {
			targets[i], s.done[i] = target{c: c, user: u}, 1
		}
		if err := h.countSettled(f.ctx, p, targets, s); err != nil {
			t.Fatal(err)
		}
	}
	stats := func(c *campaign) (pace string, doneMs int64) {
		t.Helper()
		vals, err := f.rdb.Do(f.ctx, f.rdb.B().Hmget().Key(f.keys.Stats(p, c.ID)).Field(pipeline.StatDonePace, pipeline.StatDoneMs).Build()).ToArray()
		if err != nil {
			t.Fatal(err)
		}
		pace, _ = vals[0].ToString()
		doneMs, _ = vals[1].AsInt64()
		return pace, doneMs
	}

	every := newHandler(time.Nanosecond) // a reading at each count
	settle(every, c, 1)
	pace, t1 := stats(c)
	if older, two, ok := pipeline.ParseDonePace(pace); !ok || two || older != (pipeline.DoneReading{Ms: t1, Done: 1}) {
		t.Fatalf("after the first user done: readings %q; want one, 1 done at %d", pace, t1)
	}
	time.Sleep(1100 * time.Millisecond) // a pace is read over a second at least
	settle(every, c, 2, 3)
	settle(every, c, 2, 3) // redone: nobody new, no reading
	pace, t2 := stats(c)
	if older, two, ok := pipeline.ParseDonePace(pace); !ok || !two || older != (pipeline.DoneReading{Ms: t1, Done: 1}) || t2 <= t1 {
		t.Fatalf("after three users done: readings %q (done at %d); want 3 at %d, then 1 at %d", pace, t2, t2, t1)
	}
	live, err := campaignrow.Counters(f.ctx, f.rdb, f.keys, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := campaignrow.Progress(f.ctx, f.rdb, f.db, f.keys, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * 1000 / float64(t2-t1); live.UsersDone != 3 || live.Pace != want || rep.Pace != want {
		t.Errorf("counters: %d done at %v a second lately, the report %v; want 3 at %v (2 in %d ms)", live.UsersDone, live.Pace, rep.Pace, want, t2-t1)
	}

	settle(newHandler(0), c, 4) // the default interval: too soon for another
	if got, _ := stats(c); got != pace {
		t.Errorf("a count within %v of the last reading: readings %q, want %q kept", pipeline.DonePaceEvery, got, pace)
	}

	// A direct message is done in moments and has no expected finish:
	// its partitions keep no readings.
	m := &campaign{ID: "m1", App: testApp, ttl: time.Hour, message: true}
	settle(every, m, 1, 2)
	if got, doneMs := stats(m); got != "" || doneMs == 0 {
		t.Errorf("message: readings %q, done at %d; want none, and a time", got, doneMs)
	}
}
