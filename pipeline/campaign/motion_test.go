package campaign

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// TestQueuedBehindSplitAndResolve: a campaign still being cut, whose
// remaining work waits behind another campaign's in split's and resolve's
// streams, made no progress for longer than pipeline.DownAfter while split
// cut the other (emitting its ranges, its batch still in hand, or
// committing it between cuts) and resolve read its ranges, before that
// other campaign sent anything. Nothing counted moved, so it read stalled,
// and operators looked for a dead process. It is queued. So it is, as
// before, with split holding back (deliver's backlog) and resolve idle
// while another campaign sends. With split or resolve hung on a batch,
// what holds its work moves nothing; with every send failing over, deliver
// commits its retries and sends nothing: with no campaign sending, all
// stalled, whatever else moves.
//
// The stages are real runners (pipeline.Runner), which record their
// liveness and motion as in production, with handlers that stand for the
// stage's work; the idle campaign's counters are written as the stages
// leave them (one range of two resolved, its audience counted), its last
// progress 20 s ago.
func TestQueuedBehindSplitAndResolve(t *testing.T) {
	type counters struct {
		resolved      int64 // users of its one range resolved so far
		targets, done int64
	}
	var (
		aheadOfDeliver = counters{resolved: 2, targets: 2, done: 2}
		deliverHolds   = counters{resolved: 3, targets: 3, done: 2}
	)
	// hang holds a batch without moving, until the runner stops.
	hang := func(pipeline.Keys) pipeline.HandlerFunc {
		return func(ctx context.Context, b *pipeline.Batch) error { <-ctx.Done(); return ctx.Err() }
	}
	type handlers = map[string]func(pipeline.Keys) pipeline.HandlerFunc
	tests := []struct {
		name string
		give counters
		// handlers by stage (one that acks when absent), and the stages
		// fed another campaign's entries every 200ms
		handlers handlers
		feed     []string
		// moved is the stages whose motion, recorded by their beats, the
		// test waits for before it reads the campaign
		moved []string
		// othersSend: another campaign sent a second ago
		othersSend bool
		wantQueued bool
	}{
		{"split cuts another campaign, its batch in hand", aheadOfDeliver, handlers{"split": cutForever}, []string{"split"}, []string{"split", "resolve"}, false, true},
		{"split and resolve commit another campaign's entries", aheadOfDeliver, nil, []string{"split", "resolve"}, []string{"split", "resolve"}, false, true},
		// Split holding back under deliver's backlog, resolve with nothing
		// to read: queued as before, by the campaign sending.
		{"split requeues, resolve idle, another campaign sending", aheadOfDeliver, nil, []string{"split"}, []string{"split"}, true, true},
		{"resolve hung on a batch", aheadOfDeliver, handlers{"resolve": hang}, []string{"split", "resolve"}, []string{"split"}, false, false},
		{"split hung on a batch", aheadOfDeliver, handlers{"split": hang}, []string{"split", "resolve"}, []string{"resolve"}, false, false},
		{"every send failing over", deliverHolds, handlers{"deliver": failOver}, []string{"split", "resolve", "deliver"}, []string{"split", "resolve", "deliver"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Side by side: each mostly waits for its stages' beats (one a
			// second), on a Redis and database of its own; what it asserts
			// is the stages' motion and the counters' times, not a delay.
			t.Parallel()
			rdb, db, keys := world(t)
			ctx := t.Context()
			if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: "a", App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
				t.Fatal(err)
			}
			last := time.Now().Add(-20 * time.Second).UnixMilli()
			ms := func(v int64) string { return strconv.FormatInt(v, 10) }
			do(t, rdb, rdb.B().Hset().Key(keys.Campaign("a")).FieldValue().FieldValue(pipeline.CampaignAudience, "10").Build(),
				rdb.B().Hset().Key(keys.RangeUsers("a")).FieldValue().FieldValue("x/0.0", ms(tt.give.resolved)).Build(),
				rdb.B().Hset().Key(keys.Stats(0, "a")).FieldValue().FieldValue(pipeline.StatIn, ms(tt.give.resolved)).
					FieldValue(pipeline.StatTargets, ms(tt.give.targets)).FieldValue(pipeline.StatUsersDone, ms(tt.give.done)).
					FieldValue(pipeline.StatSent, ms(tt.give.done)).FieldValue(pipeline.StatFirstMs, ms(last-20_000)).
					FieldValue(pipeline.StatLastMs, ms(last)).FieldValue(pipeline.StatDoneMs, ms(last)).Build())
			if tt.othersSend {
				if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: "b", App: "a", Channels: []string{"y"}, Title: "t"}); err != nil {
					t.Fatal(err)
				}
				sent := time.Now().Add(-time.Second).UnixMilli()
				do(t, rdb, rdb.B().Hset().Key(keys.Stats(0, "b")).FieldValue().FieldValue(pipeline.StatSent, "1").
					FieldValue(pipeline.StatFirstMs, ms(sent)).FieldValue(pipeline.StatLastMs, ms(sent)).Build())
			}

			for _, stage := range campaignStages {
				var h pipeline.HandlerFunc = func(context.Context, *pipeline.Batch) error { return nil }
				if of := tt.handlers[stage]; of != nil {
					h = of(keys)
				}
				runStage(t, rdb, keys, stage, h)
			}
			for _, stage := range tt.feed {
				feed(t, rdb, keys, stage)
			}
			motions := func() map[string]pipeline.Motion {
				m, err := pipeline.Motions(ctx, rdb, keys, campaignStages...)
				if err != nil {
					t.Fatal(err)
				}
				return m
			}
			pipelinetest.Eventually(t, 30*time.Second, fmt.Sprintf("every stage working, and %v moved", tt.moved), func() bool {
				m := motions()
				for _, s := range campaignStages {
					if !m[s].Working {
						return false
					}
				}
				for _, s := range tt.moved {
					if moved, _ := m[s].MovedWithin(pipeline.DownAfter); !moved {
						return false
					}
				}
				return true
			})
			reports := func() []Report {
				t.Helper()
				rep, err := Progress(ctx, rdb, db, keys, "a")
				if err != nil {
					t.Fatal(err)
				}
				list, _, err := List(ctx, rdb, db, keys, ListQuery{Limit: 10})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range list {
					if r.ID == "a" {
						return []Report{rep, r}
					}
				}
				t.Fatalf("the list has no campaign a: %+v", list)
				return nil
			}
			if tt.wantQueued {
				pipelinetest.Eventually(t, 30*time.Second, "the campaign queued", func() bool {
					return reports()[0].QueuedSinceMs > 0
				})
			}
			for _, rep := range reports() {
				queued, stalled := rep.QueuedSinceMs, rep.StalledSinceMs
				if !tt.wantQueued {
					queued, stalled = stalled, queued
				}
				if queued != last || stalled != 0 || rep.ExpectedFinishMs != 0 {
					t.Errorf("%s: queued since %d, stalled since %d, expected finish %d; want %s since its last progress %d, no finish (stages %+v)",
						rep.State, rep.QueuedSinceMs, rep.StalledSinceMs, rep.ExpectedFinishMs, map[bool]string{true: "queued", false: "stalled"}[tt.wantQueued], last, motions())
				}
			}
		})
	}
}

// cutForever is split cutting a large campaign: it emits a range to
// resolve every 200ms and holds its batch until the runner stops.
func cutForever(keys pipeline.Keys) pipeline.HandlerFunc {
	return func(ctx context.Context, b *pipeline.Batch) error {
		for {
			if err := b.EmitNow(ctx, pipeline.Message{Stream: keys.Stream(pipeline.StreamRanges, b.Partition), Fields: []string{"campaign", "b"}}); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// failOver is deliver with every send failing over: each entry comes back
// as a retry after a backoff (Batch.EmitAt), and the batch is committed.
func failOver(pipeline.Keys) pipeline.HandlerFunc {
	return func(_ context.Context, b *pipeline.Batch) error {
		for _, e := range b.Entries {
			b.EmitAt(time.Now().Add(200*time.Millisecond), b.Stream, "campaign", e.Fields["campaign"])
		}
		return nil
	}
}

// runStage runs a process of stage (its group and stream by the stage
// table) on every partition, beating every second, until the test ends.
func runStage(t *testing.T, rdb rueidis.Client, keys pipeline.Keys, stage string, h pipeline.Handler) {
	t.Helper()
	def, ok := pipeline.StageNamed(stage)
	if !ok {
		t.Fatalf("no stage %s", stage)
	}
	r := pipeline.NewRunner(rdb, keys, pipeline.Options{Stage: stage, Stream: def.Stream, Express: def.Express, Consumer: stage + "-1",
		Block: 100 * time.Millisecond, AliveEvery: time.Second, ShutdownTimeout: 100 * time.Millisecond}, h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	pipelinetest.Eventually(t, 30*time.Second, stage+" ready", r.Ready)
}

// feed adds an entry of another campaign to stage's stream every 200ms
// until the test ends.
func feed(t *testing.T, rdb rueidis.Client, keys pipeline.Keys, stage string) {
	def, _ := pipeline.StageNamed(stage)
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for {
			_, _ = pipeline.Emit(ctx, rdb, pipeline.Message{Stream: keys.Stream(def.Stream, 0), Fields: []string{"campaign", "b"}})
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
}

// TestHoldsOf: the stages that hold a campaign's work now, from its
// counters. A stage ahead of its work that it is through with for now
// (dedupe, having read every id of the ranges recorded, while resolve
// still reads the rest) is not one, so that its idling does not keep the
// campaign from reading queued; resolve is while split cuts, whatever it
// has recorded.
func TestHoldsOf(t *testing.T) {
	tests := []struct {
		name                        string
		split, resolved, read, done bool
		want                        []string
	}{
		{"being cut, all found so far done", false, false, true, true, []string{"split", "resolve"}},
		{"being cut, targets at deliver", false, false, true, false, []string{"split", "resolve", "deliver"}},
		{"ranges to resolve, dedupe through", true, false, true, true, []string{"resolve"}},
		{"ids to read", true, true, false, false, []string{"dedupe", "deliver"}},
		{"targets at deliver", true, true, true, false, []string{"deliver"}},
		{"nothing left", true, true, true, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := holdsOf(tt.split, tt.resolved, tt.read, tt.done); !slices.Equal(got, tt.want) {
				t.Errorf("holdsOf = %v, want %v", got, tt.want)
			}
		})
	}
}
