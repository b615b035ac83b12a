package pipeline_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// An express entry is handled while the only shared handler is held by a
// bulk batch and more bulk entries wait in the stream: the express lane has
// its own reads and handlers. Both lanes' entries are acked.
func TestExpressLaneNotBehindBulk(t *testing.T) {
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hold := make(chan struct{})
	holding := make(chan struct{}, 100)
	express := make(chan string, 10)
	h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
		if b.Lane == pipeline.Express {
			for _, e := range b.Entries {
				express <- e.Fields["n"]
			}
			return nil
		}
		holding <- struct{}{}
		<-hold
		return nil
	})
	opts := pipeline.Options{Stage: "lanes", Stream: "in", Express: true, Partitions: []int{0},
		Concurrency: 1, BatchSize: 1, Block: 100 * time.Millisecond}
	r := pipeline.NewRunner(c, keys, opts, h, zerolog.Nop(), nil)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)

	for range 5 {
		if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.Stream("in", 0), Fields: []string{"n", "bulk"}}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-holding:
	case <-time.After(10 * time.Second):
		t.Fatal("the bulk batch never reached the handler")
	}
	if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.Stream(pipeline.Express.Stream("in"), 0), Fields: []string{"n", "x1"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-express:
		if got != "x1" {
			t.Fatalf("express handler got %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the express entry waited behind the bulk batch in hand")
	}
	close(hold)
	for _, s := range []string{keys.Stream("in", 0), keys.Stream(pipeline.Express.Stream("in"), 0)} {
		pipelinetest.Eventually(t, 10*time.Second, "everything acked in "+s, func() bool {
			n, err := pipeline.Outstanding(ctx, c, []string{s}, "lanes")
			return err == nil && n == 0
		})
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Bulk still progresses while the express lane has more work than its
// handlers: a shared handler that just handled an express batch takes the
// bulk batch waiting for it before the next express one. Strict priority
// (express whenever one waits) let one high-priority campaign, which rides
// the express lane, stop every normal campaign for as long as it ran.
//
// The handlers are held and let go by the test, so the state at each step
// is known: both handlers hold express batches, an express batch waits at
// every partition's reader and the bulk batch at the bulk reader.
func TestBulkProgressesUnderExpressLoad(t *testing.T) {
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	parts := []int{0, 1, 2, 3}
	var started atomic.Int64 // express batches that reached the handler
	var bulkDone atomic.Bool
	release := make(chan struct{})
	h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
		if b.Lane == pipeline.Bulk {
			bulkDone.Store(true)
			return nil
		}
		started.Add(1)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	const perPartition = 10
	var msgs []pipeline.Message
	for _, p := range parts {
		for range perPartition {
			msgs = append(msgs, pipeline.Message{Stream: keys.Stream(pipeline.Express.Stream("in"), p), Fields: []string{"n", "x"}})
		}
	}
	if _, err := pipeline.Emit(ctx, c, msgs...); err != nil {
		t.Fatal(err)
	}
	// One shared handler and one of the express lane's own.
	opts := pipeline.Options{Stage: "lanes", Stream: "in", Express: true, Partitions: parts,
		Concurrency: 1, ExpressConcurrency: 1, BatchSize: 1, Block: 100 * time.Millisecond}
	r := pipeline.NewRunner(c, keys, opts, h, zerolog.Nop(), nil)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	pending := func(lane pipeline.Lane) int64 {
		var n int64
		for _, p := range parts {
			res, err := c.Do(ctx, c.B().Xpending().Key(keys.Stream(lane.Stream("in"), p)).Group("lanes").Build()).ToArray()
			if err != nil {
				return -1
			}
			k, _ := res[0].AsInt64()
			n += k
		}
		return n
	}
	// Both handlers hold an express batch and every express reader waits
	// with the next one: 2 + len(parts) pending.
	express := int64(2 + len(parts))
	pipelinetest.Eventually(t, 10*time.Second, "both handlers on express, every reader waiting", func() bool {
		return started.Load() == 2 && pending(pipeline.Express) == express
	})
	if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.Stream("in", 0), Fields: []string{"n", "bulk"}}); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 10*time.Second, "the bulk reader waiting", func() bool { return pending(pipeline.Bulk) == 1 })

	// Each step lets both handlers go: the shared one finds express and bulk
	// batches waiting. Strict priority took express each time, until the
	// express lane ran dry.
	const steps = 3
	for step := 1; !bulkDone.Load(); step++ {
		if step > steps {
			t.Fatalf("the bulk batch still waits after %d express batches were handled while it waited", 2*steps)
		}
		release <- struct{}{}
		release <- struct{}{}
		pipelinetest.Eventually(t, 10*time.Second, "the next step", func() bool {
			return bulkDone.Load() || started.Load() == int64(2*(step+1)) && pending(pipeline.Express) == express
		})
	}
	close(release)
	for _, s := range []string{"in", pipeline.Express.Stream("in")} {
		pipelinetest.Eventually(t, 10*time.Second, "everything acked in "+s, func() bool {
			n, err := pipeline.Outstanding(ctx, c, keys.Streams(s), "lanes")
			return err == nil && n == 0
		})
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
