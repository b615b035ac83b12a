package pipeline_test

import (
	"context"
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
