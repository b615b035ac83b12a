package pipeline_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// TestRestartResumesOwnPending: a stage that died with entries read and not
// acked, restarted under the same consumer name, handles them at once
// rather than a ClaimIdle later (a scheduled start read by a split killed
// before its ack went out half a minute late). Under another name they are
// left to the claim, as before.
func TestRestartResumesOwnPending(t *testing.T) {
	tests := []struct {
		name, consumer string
		resumed        bool
	}{
		{"same name", "c1", true},
		{"another name", "c2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := client(t, env.Redis.Addr)
			keys := testKeys()
			opts := pipeline.Options{Stage: "s", Stream: "src", Consumer: "c1", Block: 50 * time.Millisecond,
				ClaimIdle: time.Minute, ShutdownTimeout: 50 * time.Millisecond}
			// The first process reads three entries and dies holding them.
			var inHand atomic.Int64
			first := startRunner(t, c, keys, opts, pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
				inHand.Add(int64(len(b.Entries)))
				<-ctx.Done()
				return ctx.Err()
			}))
			pipelinetest.Eventually(t, 10*time.Second, "the first runner ready", first.r.Ready)
			for _, p := range []int{1, 6, 11} {
				if _, err := pipeline.Emit(t.Context(), c, pipeline.Message{Stream: keys.Stream("src", p), Fields: []string{"p", "x"}}); err != nil {
					t.Fatal(err)
				}
			}
			pipelinetest.Eventually(t, 10*time.Second, "three entries in hand", func() bool { return inHand.Load() == 3 })
			first.cancel()
			<-first.done
			first.done = nil

			var handled atomic.Int64
			opts.Consumer = tt.consumer
			startRunner(t, c, keys, opts, pipeline.HandlerFunc(func(_ context.Context, b *pipeline.Batch) error {
				handled.Add(int64(len(b.Entries)))
				return nil
			}))
			if !tt.resumed {
				time.Sleep(3 * time.Second)
				if n := handled.Load(); n != 0 {
					t.Fatalf("%d entries of another consumer handled within 3 s, ClaimIdle is a minute", n)
				}
				return
			}
			pipelinetest.Eventually(t, 10*time.Second, "the three entries handled and acked", func() bool {
				pending, err := c.Do(t.Context(), c.B().Xpending().Key(keys.Stream("src", 6)).Group("s").Build()).ToArray()
				return handled.Load() == 3 && err == nil && len(pending) > 0 && mustInt(pending[0]) == 0
			})
		})
	}
}
