package pipeline_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// A handler several times slower than ClaimIdle keeps its batch: the second
// runner of the group never claims it away, so every entry is handled exactly
// once. Entries left pending by a consumer that died are still claimed.
func TestSlowBatchStaysClaimedDeadConsumersDoNot(t *testing.T) {
	c := client(t, env.Redis.Addr)
	keys := pipeline.NewKeys("t"+strconv.FormatUint(rand.Uint64(), 36), 4)
	ctx := context.Background()
	// ClaimIdle of a second: the keep-alive (every third of it) must miss
	// a whole idle time for the batch to be claimed away, and a stall of
	// 200 ms (GC under -race on a loaded machine) is not that. 24 entries,
	// 6 a partition, half of them the dead consumer's: two batches of each
	// partition, eight for two workers, which wait their turn longer than
	// ClaimIdle too (40 took six turns of 3 s, not four).
	const count, idle = 24, time.Second
	produce(t, c, keys, "slow", count)

	// A consumer reads 3 entries of every partition, then dies.
	dead := 0
	for p := range keys.Partitions {
		stream := keys.Stream("slow", p)
		if err := pipeline.CreateGroup(ctx, c, stream, "slow"); err != nil {
			t.Fatal(err)
		}
		res, err := c.Do(ctx, c.B().Xreadgroup().Group("slow", "dead").Count(3).Streams().Key(stream).Id(">").Build()).AsXRead()
		if err != nil {
			t.Fatal(err)
		}
		dead += len(res[stream])
	}
	if dead != 3*keys.Partitions {
		t.Fatalf("dead consumer read %d entries, want %d", dead, 3*keys.Partitions)
	}

	var mu sync.Mutex
	handled := map[string]int{}
	slow := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
		mu.Lock()
		for _, e := range b.Entries {
			handled[e.Fields["n"]]++
		}
		mu.Unlock()
		select { // 3×ClaimIdle: without the heartbeat the other runner claims it
		case <-time.After(3 * idle):
		case <-ctx.Done():
			return ctx.Err()
		}
		for _, e := range b.Entries {
			b.Emit(keys.Stream("done", b.Partition), "n", e.Fields["n"])
		}
		return nil
	})
	runCtx, cancel := context.WithCancel(ctx)
	var runners sync.WaitGroup
	for _, consumer := range []string{"a", "b"} {
		// Concurrency 1 and small batches: batches also wait for a free
		// worker longer than ClaimIdle, and must stay claimed meanwhile.
		r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "slow", Stream: "slow", Consumer: consumer,
			Concurrency: 1, BatchSize: 4, ClaimIdle: idle, Block: 100 * time.Millisecond}, slow, zerolog.Nop(), nil)
		runners.Go(func() {
			if err := r.Run(runCtx); err != nil {
				t.Error(err)
			}
		})
	}
	pipelinetest.Eventually(t, 2*time.Minute, "every entry handled", func() bool {
		return len(collect(t, c, keys, "done")) == count
	})
	pipelinetest.Eventually(t, 10*time.Second, "nothing pending", func() bool {
		streams := make([]string, keys.Partitions)
		for p := range streams {
			streams[p] = keys.Stream("slow", p)
		}
		groups, err := pipeline.StreamGroups(ctx, c, streams)
		if err != nil {
			t.Fatal(err)
		}
		for _, gs := range groups {
			for _, g := range gs {
				if g.Pending != 0 {
					return false
				}
			}
		}
		return true
	})
	cancel()
	runners.Wait()

	exactlyOnce(t, collect(t, c, keys, "done"), count)
	mu.Lock()
	defer mu.Unlock()
	if len(handled) != count {
		t.Fatalf("handled %d distinct entries, want %d", len(handled), count)
	}
	for n, times := range handled {
		if times != 1 {
			t.Errorf("entry %s handled %d times, want 1 (claimed away from a live consumer)", n, times)
		}
	}
}

// A batch in progress is Lost within a few keep intervals once it stops
// being its consumer's: another consumer claimed its entries, or claimed
// and acked them (handled them through), or Redis lost the stream and
// group. (Entries acked by its own commit are not a reason:
// TestKeepClaimedSeesTheBatchLost.)
func TestBatchLost(t *testing.T) {
	tests := []struct {
		name     string
		take     func(t *testing.T, stream string, ids []string) // what happens to the batch meanwhile
		wantLost bool
	}{
		{"claimed by another consumer", func(t *testing.T, stream string, ids []string) {
			c := client(t, env.Redis.Addr)
			cmd := c.B().Xclaim().Key(stream).Group("lost").Consumer("thief").MinIdleTime("0").Id(ids...).Justid().Build()
			if err := c.Do(context.Background(), cmd).Error(); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"stream and group gone", func(t *testing.T, stream string, _ []string) {
			c := client(t, env.Redis.Addr)
			if err := c.Do(context.Background(), c.B().Del().Key(stream).Build()).Error(); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"acked by another consumer", func(t *testing.T, stream string, ids []string) {
			c := client(t, env.Redis.Addr)
			if err := c.Do(context.Background(), c.B().Xack().Key(stream).Group("lost").Id(ids...).Build()).Error(); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := client(t, env.Redis.Addr)
			keys := pipeline.NewKeys("t"+strconv.FormatUint(rand.Uint64(), 36), 1)
			produce(t, c, keys, "lost", 5)
			const every = 50 * time.Millisecond
			lost := make(chan bool, 1)
			h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
				ids := make([]string, len(b.Entries))
				for i, e := range b.Entries {
					ids[i] = e.ID
				}
				tt.take(t, b.Stream, ids)
				select {
				case <-b.Lost():
					lost <- true
				case <-time.After(20 * every):
					lost <- false
				}
				return nil
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "lost", Stream: "lost", Consumer: "owner",
				Concurrency: 1, BatchSize: 10, KeepEvery: every, Block: 100 * time.Millisecond}, h, zerolog.Nop(), nil)
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			select {
			case got := <-lost:
				if got != tt.wantLost {
					t.Errorf("Lost closed: %v, want %v", got, tt.wantLost)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the handler never saw the batch")
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// KeepEvery is never below MinKeepEvery, however it is set: 1ns sent a keep
// per batch without a pause, and a ClaimIdle of 2ns made it 0, a ticker
// that panicked the runner at its first batch (now a third of
// MinClaimIdle, which such a ClaimIdle is raised to: TestClaimIdleFloor).
func TestKeepEveryFloor(t *testing.T) {
	tests := []struct {
		name string
		give pipeline.Options
		want time.Duration
	}{
		{"default", pipeline.Options{}, 250 * time.Millisecond},
		{"a third of ClaimIdle", pipeline.Options{ClaimIdle: 300 * time.Millisecond}, 100 * time.Millisecond},
		{"as set", pipeline.Options{KeepEvery: 20 * time.Millisecond}, 20 * time.Millisecond},
		{"tiny", pipeline.Options{KeepEvery: time.Nanosecond}, pipeline.MinKeepEvery},
		{"just under", pipeline.Options{KeepEvery: pipeline.MinKeepEvery - 1}, pipeline.MinKeepEvery},
		{"a third of a tiny ClaimIdle", pipeline.Options{ClaimIdle: 2 * time.Nanosecond}, pipeline.MinClaimIdle / 3},
		{"a third of a short ClaimIdle", pipeline.Options{ClaimIdle: 15 * time.Millisecond}, pipeline.MinClaimIdle / 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.give.Stage, tt.give.Stream = "keep", "keep"
			if got := tt.give.Effective(pipeline.NewKeys("t", 1)).KeepEvery; got != tt.want {
				t.Errorf("KeepEvery %v, want %v", got, tt.want)
			}
		})
	}
}
