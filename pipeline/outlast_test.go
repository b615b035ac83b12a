package pipeline_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// TestBatchOutlastsRedisOutage: a batch in hand when Redis goes down for
// longer than RetryFor is tried again as soon as Redis is back, not left
// for a claim once idle ClaimIdle (here 20 s: before, the entry was
// handled ~17 s after the restart). With a second consumer whose claim
// could take the entries the moment Redis is back, still exactly one
// handler gets them through.
func TestBatchOutlastsRedisOutage(t *testing.T) {
	tests := []struct {
		name      string
		claimIdle time.Duration
		second    bool // a second consumer, claiming what goes idle
	}{
		{"alone", 20 * time.Second, false},
		{"beside a consumer that claims", 2 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			redis := pipelinetest.RedisT(t, pipelinetest.RedisOptions{AOF: true})
			// Every write on disk before its answer: the read and the keeps
			// survive the kill whatever the disk's pace (everysec could
			// lose the last second's).
			admin := client(t, redis.Addr)
			if err := admin.Do(t.Context(), admin.B().ConfigSet().ParameterValue().ParameterValue("appendfsync", "always").Build()).Error(); err != nil {
				t.Fatal(err)
			}
			keys := testKeys()
			stream := keys.Stream(pipeline.StreamDedupe, 3)
			var handled atomic.Int64
			inHand, release := make(chan struct{}), make(chan struct{})
			var first atomic.Bool
			first.Store(true)
			// Each consumer has its own client, as its own process would:
			// the handler's write to Redis is what fails while it is down.
			handler := func(c rueidis.Client, holds bool) pipeline.Handler {
				return pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
					if holds && first.CompareAndSwap(true, false) {
						close(inHand)
						select {
						case <-release:
						case <-ctx.Done():
							return ctx.Err()
						}
					}
					if err := c.Do(ctx, c.B().Incr().Key(keys.Prefix+":handled").Build()).Error(); err != nil {
						return err
					}
					handled.Add(1)
					return nil
				})
			}
			opts := pipeline.Options{Stage: "dedupe", Stream: pipeline.StreamDedupe, Express: true, BatchSize: 1,
				Block: 100 * time.Millisecond, ClaimIdle: tt.claimIdle, RetryFor: time.Second, ShutdownTimeout: 100 * time.Millisecond}
			c1 := client(t, redis.Addr)
			opts.Consumer = "d1"
			runLogged(t, c1, keys, opts, handler(c1, true))
			if _, err := pipeline.Emit(t.Context(), c1, pipeline.Message{Stream: stream, Fields: []string{"n", "1"}}); err != nil {
				t.Fatal(err)
			}
			<-inHand
			if tt.second {
				c2 := client(t, redis.Addr)
				opts.Consumer = "d2"
				runLogged(t, c2, keys, opts, handler(c2, false))
			}
			time.Sleep(300 * time.Millisecond) // a keep or so
			if err := redis.Kill(); err != nil {
				t.Fatal(err)
			}
			close(release) // the handler's write fails from now, past RetryFor
			time.Sleep(4 * time.Second)
			if err := redis.Restart(); err != nil {
				t.Fatal(err)
			}
			back := time.Now()
			pipelinetest.Eventually(t, 10*time.Second, "the entry handled and acked", func() bool {
				p, err := c1.Do(t.Context(), c1.B().Xpending().Key(stream).Group("dedupe").Build()).ToArray()
				return handled.Load() > 0 && err == nil && len(p) > 0 && mustInt(p[0]) == 0
			})
			t.Logf("handled %v after Redis was back", time.Since(back).Round(time.Millisecond))
			time.Sleep(time.Second) // a second handler, had there been one, would have been through too
			if n, err := c1.Do(t.Context(), c1.B().Get().Key(keys.Prefix+":handled").Build()).AsInt64(); n != 1 || handled.Load() != 1 {
				t.Errorf("the entry was handled through %d times (Redis counted %d, %v); want once", handled.Load(), n, err)
			}
		})
	}
}

func mustInt(m rueidis.RedisMessage) int64 {
	n, _ := m.AsInt64()
	return n
}
