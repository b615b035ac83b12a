package pipeline_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
)

// TestLingerGathersATrickle: entries written one at a time, 20 ms apart,
// reach the handler as one batch when the stage lingers, and one batch an
// entry when it does not (XREADGROUP's BLOCK returns with the first one):
// for the webhook, a POST per results entry.
func TestLingerGathersATrickle(t *testing.T) {
	const entries = 20
	tests := []struct {
		name       string
		linger     time.Duration
		maxBatches int // the handler's batches for the 20 entries, at most
		minBatches int
	}{
		// The whole trickle takes ~400 ms: the 3 s wait covers it even on
		// a loaded machine, and a late straggler makes a second batch.
		{"lingers", 3 * time.Second, 2, 1},
		{"does not", 0, entries, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := client(t, env.Redis.Addr)
			keys := testKeys()
			sizes := make(chan int, entries)
			h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
				sizes <- len(b.Entries)
				return nil
			})
			r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "src", Stream: "src", Partitions: []int{0},
				Block: 200 * time.Millisecond, Linger: tt.linger}, h, zerolog.Nop(), nil)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			}()
			for !r.Ready() {
				time.Sleep(10 * time.Millisecond)
			}
			for n := range entries {
				if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.Stream("src", 0), Fields: []string{"n", strconv.Itoa(n)}}); err != nil {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			got, batches := 0, 0
			deadline := time.After(30 * time.Second)
			for got < entries {
				select {
				case n := <-sizes:
					got += n
					batches++
				case <-deadline:
					t.Fatalf("the handler got %d of %d entries", got, entries)
				}
			}
			if batches > tt.maxBatches || batches < tt.minBatches {
				t.Errorf("%d entries came in %d batches, want %d to %d", entries, batches, tt.minBatches, tt.maxBatches)
			}
		})
	}
}
