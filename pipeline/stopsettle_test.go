package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// A handler that returns only after the stop's ShutdownTimeout cut its
// context (a webhook whose POST was in flight at the cut) still has its
// batch committed: its emits written, the entries it finished acked, the
// one it left (Fail) pending. Before, the commit went out under the ended
// context and acked nothing: the batch was done again after the restart.
func TestCommitOutlastsTheShutdownCut(t *testing.T) {
	t.Parallel()
	c := client(t, env.Redis.Addr)
	keys := pipeline.NewKeys("cut"+strconv.FormatInt(time.Now().UnixNano(), 36), 1)
	produce(t, c, keys, "cut", 3)
	started := make(chan struct{}, 1)
	r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "cut", Stream: "cut", Consumer: "c1", Concurrency: 1,
		Block: 50 * time.Millisecond, ShutdownTimeout: 200 * time.Millisecond},
		pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
			started <- struct{}{}
			<-ctx.Done() // the cut, ShutdownTimeout after the stop
			for _, e := range b.Entries[:len(b.Entries)-1] {
				b.Emit(keys.Stream("cut-out", b.Partition), "n", e.Fields["n"])
			}
			b.Fail(len(b.Entries)-1, pipeline.ErrStopping)
			return nil
		}), zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the batch was never handled")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	pending, err := c.Do(t.Context(), c.B().Xpending().Key(keys.Stream("cut", 0)).Group("cut").Build()).ToArray()
	if err != nil {
		t.Fatal(err)
	}
	n, _ := pending[0].AsInt64()
	out := len(collect(t, c, keys, "cut-out"))
	if n != 1 || out != 2 {
		t.Errorf("after the stop: %d entries pending, %d emitted; want 1 pending (the one left), 2 emitted", n, out)
	}
}

// An entry left pending at a stop, never handed to a handler or left by
// one for the stop (ErrStopping), gets back the delivery that brought it:
// however many stops it waits through (twice MaxDeliveries here), it is
// never dead-lettered, and is handled once a process keeps running. One a
// handler failed at a stop with an error of its own still counts each
// delivery and reaches the DLQ. Before, every stop counted one: N rolling
// restarts pushed healthy entries to the DLQ.
func TestAStopCountsNoDelivery(t *testing.T) {
	t.Parallel()
	const maxDeliveries, stops = 2, 4
	tests := []struct {
		name       string
		partitions int // one entry in each; one handler: a second batch waits for it
		atStop     func(b *pipeline.Batch) error
		wantDead   bool
	}{
		{name: "marked ErrStopping", partitions: 1, atStop: func(b *pipeline.Batch) error {
			for i := range b.Entries {
				b.Fail(i, pipeline.ErrStopping)
			}
			return nil
		}},
		{name: "returned ErrStopping", partitions: 1, atStop: func(*pipeline.Batch) error {
			return fmt.Errorf("stopping: %w", pipeline.ErrStopping)
		}},
		{name: "never handed to a handler", partitions: 2, atStop: func(*pipeline.Batch) error { return pipeline.ErrStopping }},
		{name: "failed at the stop", partitions: 1, atStop: func(b *pipeline.Batch) error {
			for i := range b.Entries {
				b.Fail(i, errors.New("receiver answered 500"))
			}
			return nil
		}, wantDead: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := client(t, env.Redis.Addr)
			keys := pipeline.NewKeys("stc"+strconv.Itoa(i)+strconv.FormatInt(time.Now().UnixNano(), 36), tt.partitions)
			produce(t, c, keys, "stc", tt.partitions)
			dead := func() int64 {
				n, err := c.Do(t.Context(), c.B().Xlen().Key(keys.DLQ()).Build()).AsInt64()
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			for stop := range stops {
				// c0, c0, c1, c1: a restart under the same name
				// (resumeOwn's XCLAIM) and a new pod (XAUTOCLAIM) both
				// counted a delivery.
				var handled atomic.Bool
				run := runStc(t, c, keys, "c"+strconv.Itoa(stop/2), maxDeliveries, func(ctx context.Context, b *pipeline.Batch) error {
					handled.Store(true)
					<-b.Stopping()
					return tt.atStop(b)
				})
				pipelinetest.Eventually(t, 10*time.Second, "a batch handled or dead-lettered", func() bool { return handled.Load() || dead() > 0 })
				// The other partition's entry read or claimed, waiting for
				// the one handler (kept claimed meanwhile).
				time.Sleep(400 * time.Millisecond)
				run()
			}
			var handled atomic.Int64
			run := runStc(t, c, keys, "c9", maxDeliveries, func(ctx context.Context, b *pipeline.Batch) error {
				handled.Add(int64(len(b.Entries)))
				return nil
			})
			defer run()
			pipelinetest.Eventually(t, 10*time.Second, "every entry handled or dead-lettered", func() bool {
				return handled.Load()+dead() >= int64(tt.partitions)
			})
			if got := dead() > 0; got != tt.wantDead {
				t.Errorf("dead-lettered after %d stops (max deliveries %d): %v, want %v", stops, maxDeliveries, got, tt.wantDead)
			}
		})
	}
}

// A stop is not what an entry failed of: an entry that failed with an error
// of its own, then was left at a stop (ErrStopping, returned or marked),
// keeps that error as its note, which its dead letter would give as the
// reason. Before, the stop's "shutting down; left pending" replaced it.
func TestAStopKeepsTheLastError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		atStop func(b *pipeline.Batch) error
	}{
		{name: "returned", atStop: func(*pipeline.Batch) error { return pipeline.ErrStopping }},
		{name: "marked", atStop: func(b *pipeline.Batch) error {
			for i := range b.Entries {
				b.Fail(i, pipeline.ErrStopping)
			}
			return nil
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := client(t, env.Redis.Addr)
			keys := pipeline.NewKeys("ske"+strconv.Itoa(i)+strconv.FormatInt(time.Now().UnixNano(), 36), 1)
			produce(t, c, keys, "stc", 1)
			stream := keys.Stream("stc", 0)
			note := func() string {
				m, err := c.Do(t.Context(), c.B().Hgetall().Key(stream+":errors").Build()).AsStrMap()
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range m {
					return v
				}
				return ""
			}
			run := runStc(t, c, keys, "c0", 10, func(context.Context, *pipeline.Batch) error {
				return errors.New("receiver answered 500")
			})
			pipelinetest.Eventually(t, 10*time.Second, "the failure noted", func() bool { return note() != "" })
			run()
			var handled atomic.Bool
			run = runStc(t, c, keys, "c0", 10, func(ctx context.Context, b *pipeline.Batch) error {
				handled.Store(true)
				<-b.Stopping()
				return tt.atStop(b)
			})
			pipelinetest.Eventually(t, 10*time.Second, "the entry handled again", handled.Load)
			run()
			if got := note(); got != "receiver answered 500" {
				t.Errorf("the entry's note after the stop: %q, want its last failure's", got)
			}
		})
	}
}

// runStc runs a runner of stream stc as consumer until the returned stop.
func runStc(t *testing.T, c rueidis.Client, keys pipeline.Keys, consumer string, maxDeliveries int64, h pipeline.HandlerFunc) (stop func()) {
	t.Helper()
	r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "stc", Stream: "stc", Consumer: consumer, Concurrency: 1,
		// ClaimIdle far above KeepEvery (250ms) on a loaded machine: a
		// claim in this process of an entry in hand, its keep late, would
		// count a delivery of its own.
		MaxDeliveries: maxDeliveries, ClaimIdle: time.Second, Block: 50 * time.Millisecond, ShutdownTimeout: 5 * time.Second},
		h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
