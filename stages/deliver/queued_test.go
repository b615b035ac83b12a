package deliver

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	campaignrow "github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// TestQueuedBehindIsNotStalled: a campaign whose next entries wait in
// deliver's stream behind a big uncapped campaign's makes no progress of
// its own for longer than DownAfter (a few seconds here: Reader) while
// deliver, alive, sends the big one. It waits its turn (queued_since_ms), and is not called
// stalled, which sent operators looking for a dead process that was not
// dead. With deliver killed it is stalled, as before.
//
// One real deliver process (reading one entry at a time, so that the
// stream's order is the order of the sends) at a cap of 100 sends a
// second: the big campaign's 2,200 users (2,514 devices) take it 25 s at
// the very least, however fast the machine, so it is still being sent when
// the readings end, downAfter+3 s after the small one's first half was
// done. Then the big one is canceled rather than waited for (its end
// proves nothing the readings did not), and the small one's turn comes.
func TestQueuedBehindIsNotStalled(t *testing.T) {
	// Among the parallel tests, not alone with its two cases: the killed one
	// is done half-way through the other's wait, and its slot is another's.
	t.Parallel()
	const (
		small, big = 40, 2200
		tps        = 100
		// downAfter stands for pipeline.DownAfter (15 s), which the
		// readers take by default: long beside a few sends at 100 a
		// second, which move the big campaign every 10 ms.
		downAfter = 4 * time.Second
	)
	reader := campaignrow.Reader{DownAfter: downAfter}
	tests := []struct {
		name string
		kill bool // SIGKILL deliver once the small campaign waits
	}{
		{"deliver sending the big one ahead of it", false},
		{"deliver killed", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // mostly waiting (100 sends a second), on a fixture of its own
			f := newFixture(t)
			p := startProviders(t, fakeFlags{})
			f.seedDevices(big, false) // iOS alone: one provider, one cap
			for id, targets := range map[string]int{"small": small, "big": big} {
				f.createCampaign(id, `{}`)
				f.upstreamDone(id, targets)
			}
			d := f.startDeliver(t, p, "d1", "--tps", strconv.Itoa(tps), "--batch", "1", "--concurrency", "1")

			f.emitEvery("small", userRange(small)[:small/2], 20)
			pipelinetest.Eventually(t, 60*time.Second, "the small campaign's first half done", func() bool {
				s := f.stats("small")
				return s[pipeline.StatUsersDone] == small/2 && s[pipeline.StatLastMs] > s[pipeline.StatFirstMs]
			})
			f.emitEvery("big", userRange(big), 50)
			f.emitEvery("small", userRange(small)[small/2:], 20)
			s := f.stats("small")
			moved := max(s[pipeline.StatDoneMs], s[pipeline.StatLastMs]) // its last progress
			// Its report, alone or in the list (which reads the pipeline
			// once for the page), read alternately.
			reads := 0
			progress := func() campaignrow.Report {
				t.Helper()
				if reads++; reads%2 == 0 {
					reps, _, err := reader.List(f.ctx, f.rdb, f.db, f.keys, campaignrow.ListQuery{})
					if err != nil {
						t.Fatal(err)
					}
					for _, rep := range reps {
						if rep.ID == "small" {
							return rep
						}
					}
					t.Fatalf("the list has no small campaign: %+v", reps)
				}
				rep, err := reader.Progress(f.ctx, f.rdb, f.db, f.keys, "small")
				if err != nil {
					t.Fatal(err)
				}
				return rep
			}

			if tt.kill {
				d.signal(syscall.SIGKILL)
				pipelinetest.Eventually(t, 90*time.Second, "the small campaign stalled", func() bool {
					return progress().StalledSinceMs > 0
				})
				if rep := progress(); rep.StalledSinceMs != moved || rep.QueuedSinceMs != 0 || rep.ExpectedFinishMs != 0 {
					t.Errorf("stalled since %d, queued since %d, expected finish %d; want stalled since its last progress %d, not queued, no finish",
						rep.StalledSinceMs, rep.QueuedSinceMs, rep.ExpectedFinishMs, moved)
				}
				return
			}
			// From downAfter after its last progress, for a few seconds
			// while the big one is still being sent: queued every time.
			for time.Since(time.UnixMilli(moved)) < downAfter+3*time.Second {
				if done := f.stats("small")[pipeline.StatUsersDone]; done != small/2 {
					t.Fatalf("the small campaign's second half was sent (%d done) before the big one: it did not wait", done)
				}
				if time.Since(time.UnixMilli(moved)) < downAfter {
					time.Sleep(200 * time.Millisecond)
					continue
				}
				rep := progress()
				if rep.StalledSinceMs != 0 || rep.QueuedSinceMs != moved || rep.ExpectedFinishMs != 0 {
					t.Fatalf("%v after its last progress, with deliver sending the big campaign: stalled since %d, queued since %d, expected finish %d; "+
						"want queued since its last progress %d, not stalled, no finish",
						time.Since(time.UnixMilli(moved)).Round(time.Millisecond), rep.StalledSinceMs, rep.QueuedSinceMs, rep.ExpectedFinishMs, moved)
				}
				time.Sleep(500 * time.Millisecond)
			}
			if b := f.stats("big"); b[pipeline.StatUsersDone] >= big {
				t.Fatalf("the big campaign was done (%v) before the readings: nothing was ahead of the small one", b)
			}
			// Its turn comes once the big one is out of its way (canceled:
			// deliver drops the rest of it within a second): it moves
			// again, and is done.
			if _, err := campaignrow.Cancel(f.ctx, f.rdb, f.db, f.keys, "big"); err != nil {
				t.Fatal(err)
			}
			f.waitDone("small", small, 120*time.Second)
			if rep := progress(); rep.StalledSinceMs != 0 || rep.QueuedSinceMs != 0 {
				t.Errorf("done, and still stalled since %d, queued since %d", rep.StalledSinceMs, rep.QueuedSinceMs)
			}
		})
	}
}

// upstreamDone writes what split, resolve and dedupe leave of a campaign
// whose targets they passed on: every range out and recorded, every id
// read, targets found (on partition 0: progress sums the partitions).
// Deliver's entries are then emitted by hand, in the order a test wants.
func (f *fixture) upstreamDone(id string, targets int) {
	f.t.Helper()
	n := strconv.Itoa(targets)
	exp := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	for _, r := range f.rdb.DoMulti(f.ctx,
		f.rdb.B().Hset().Key(f.keys.Campaign(id)).FieldValue().FieldValue(campaignrow.HashExpiresMs, exp).
			FieldValue(pipeline.CampaignSplitDone, "1").FieldValue(pipeline.CampaignRangesTotal, "1").Build(),
		f.rdb.B().Hset().Key(f.keys.RangeUsers(id)).FieldValue().FieldValue("news/0.0", n).Build(),
		f.rdb.B().Hset().Key(f.keys.Stats(0, id)).FieldValue().FieldValue(pipeline.StatIn, n).FieldValue(pipeline.StatTargets, n).Build(),
	) {
		if err := r.Error(); err != nil {
			f.t.Fatal(err)
		}
	}
}
