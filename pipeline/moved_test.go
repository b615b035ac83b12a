package pipeline_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// TestMotions: a process says with its beats when it last moved work, and
// Motions reads it: a batch committed with entries acked, or a batch in
// hand that emitted (EmitNow) or reported progress. A batch whose entries
// all failed, or that keeps failing, moved nothing; nor did a process with
// nothing to do. A process of an older version says nothing (no field),
// nor does one that took over a name a newer one beat under (its beats no
// longer the field's): its group's motion is unknown, not "none".
func TestMotions(t *testing.T) {
	tests := []struct {
		name string
		// handle is the resolve process's handler; nil: no process runs,
		// an older one beats by hand (stale, with a moved field a newer
		// process of the same name left)
		handle     pipeline.HandlerFunc
		older      bool
		stale      bool
		wantMoved  bool
		wantKnown  bool
		wantReason string
	}{
		{"commits", func(context.Context, *pipeline.Batch) error { return nil }, false, false, true, true, "acked entries"},
		{"emits, its batch in hand", holdWith(func(ctx context.Context, b *pipeline.Batch) {
			_ = b.EmitNow(ctx, pipeline.Message{Stream: b.Stream + ":out", Fields: []string{"n", "1"}})
		}), false, false, true, true, "an EmitNow"},
		{"progresses, its batch in hand", holdWith(func(_ context.Context, b *pipeline.Batch) { b.Progress() }), false, false, true, true, "Progress"},
		{"every entry failed", func(_ context.Context, b *pipeline.Batch) error {
			for i := range b.Entries {
				b.Fail(i, errors.New("no"))
			}
			return nil
		}, false, false, false, true, "nothing acked"},
		{"keeps failing", func(context.Context, *pipeline.Batch) error { return errors.New("down") }, false, false, false, true, "nothing committed"},
		{"older version", nil, true, false, false, false, "no report"},
		{"older version, under a newer one's name", nil, true, true, false, false, "a report of other beats"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Side by side: each waits a couple of seconds of beats, on a
			// Redis server of its own.
			t.Parallel()
			c, keys := opsRedis(t)
			ctx := t.Context()
			if tt.older {
				beatOlder(t, c, keys, tt.stale)
			} else {
				runResolve(t, c, keys, tt.handle)
				if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.Stream(pipeline.StreamRanges, 0), Fields: []string{"n", "1"}}); err != nil {
					t.Fatal(err)
				}
			}
			var m pipeline.Motion
			// A few beats, so that a motion to come has been recorded.
			deadline := time.Now().Add(2 * time.Second)
			pipelinetest.Eventually(t, 30*time.Second, "resolve working (and moved, if it does)", func() bool {
				ms, err := pipeline.Motions(ctx, c, keys, "resolve")
				if err != nil {
					t.Fatal(err)
				}
				m = ms["resolve"]
				moved, _ := m.MovedWithin(pipeline.DownAfter)
				return m.Working && (moved || !tt.wantMoved && time.Now().After(deadline))
			})
			if moved, known := m.MovedWithin(pipeline.DownAfter); moved != tt.wantMoved || known != tt.wantKnown {
				t.Errorf("%+v: moved %v, known %v; want %v, %v (%s)", m, moved, known, tt.wantMoved, tt.wantKnown, tt.wantReason)
			}
		})
	}
}

// holdWith is a handler that calls each every 100ms on its batch, and holds
// it until the runner stops.
func holdWith(each func(context.Context, *pipeline.Batch)) pipeline.HandlerFunc {
	return func(ctx context.Context, b *pipeline.Batch) error {
		for {
			each(ctx, b)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// runResolve runs a resolve process on every partition, beating every
// 500ms, until the test ends.
func runResolve(t *testing.T, c rueidis.Client, keys pipeline.Keys, h pipeline.Handler) {
	t.Helper()
	r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "resolve", Stream: pipeline.StreamRanges, Consumer: "r1",
		Block: 100 * time.Millisecond, AliveEvery: 500 * time.Millisecond, ShutdownTimeout: 100 * time.Millisecond}, h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { cancel(); <-done }) })
	pipelinetest.Eventually(t, 30*time.Second, "runner ready", r.Ready)
}

// beatOlder records a resolve process alive as a version before the moved
// hash does (aliveScript's value then: "<unix ms>,<interval ms>", nothing
// else), every 200ms until the test ends; with stale, a moved field beside
// it that a newer process of the same name left before it stopped.
func beatOlder(t *testing.T, c rueidis.Client, keys pipeline.Keys, stale bool) {
	t.Helper()
	beat := func(ctx context.Context) error {
		now, err := pipeline.RedisTime(c.Do(ctx, c.B().Time().Build()))
		if err != nil {
			return err
		}
		ms := now.UnixMilli()
		return c.Do(ctx, c.B().Hset().Key(keys.Alive("resolve")).FieldValue().FieldValue("r1", strconv.FormatInt(ms, 10)+",200").Build()).Error()
	}
	if err := beat(t.Context()); err != nil {
		t.Fatal(err)
	}
	if stale {
		then := strconv.FormatInt(time.Now().Add(-time.Minute).UnixMilli(), 10)
		if err := c.Do(t.Context(), c.B().Hset().Key(keys.Moved("resolve")).FieldValue().FieldValue("r1", then+","+then).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
				_ = beat(ctx)
			}
		}
	}()
}
