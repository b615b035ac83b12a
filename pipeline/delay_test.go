package pipeline_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// A handler's EmitAt comes back through the stream once, not before it is
// due; EmitAt outside a handler schedules, Unschedule takes it back.
func TestDelayedEntriesComeBackOnceWhenDue(t *testing.T) {
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	const count, delay = 200, 400 * time.Millisecond
	produce(t, c, keys, "src", count)

	var mu sync.Mutex
	seen := map[string]int{}    // n of the delayed copies, as handled
	early := map[string]int64{} // how much too early a copy came, ms
	h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
		for _, e := range b.Entries {
			due, _ := strconv.ParseInt(e.Fields["due"], 10, 64)
			if due == 0 {
				at := time.Now().Add(delay)
				b.EmitAt(at, b.Stream, "n", e.Fields["n"], "due", strconv.FormatInt(at.UnixMilli(), 10), "bin", "\xff\x00:9:")
				continue
			}
			if e.Fields["n"] != "sched" && e.Fields["bin"] != "\xff\x00:9:" {
				t.Errorf("binary field came back as %q", e.Fields["bin"])
			}
			mu.Lock()
			seen[e.Fields["n"]]++
			if d := due - time.Now().UnixMilli(); d > 5 { // Redis's clock is this machine's
				early[e.Fields["n"]] = d
			}
			mu.Unlock()
		}
		return nil
	})
	r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "src", Stream: "src", Block: 100 * time.Millisecond}, h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()

	// Scheduled from outside: one kept, one taken back before it is due.
	keep := pipeline.Message{Stream: keys.Stream("src", 1), Fields: []string{"n", "sched", "due", strconv.FormatInt(time.Now().Add(time.Second).UnixMilli(), 10)}}
	drop := pipeline.Message{Stream: keys.Stream("src", 2), Fields: []string{"n", "dropped", "due", "1"}}
	if err := pipeline.EmitAt(ctx, c, time.Now().Add(time.Second), keep, drop); err != nil {
		t.Fatal(err)
	}
	if ok, err := pipeline.Unschedule(ctx, c, drop); err != nil || !ok {
		t.Fatalf("unschedule: %v, %v", ok, err)
	}
	pipelinetest.Eventually(t, 30*time.Second, "every delayed copy", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) >= count+1
	})
	time.Sleep(2 * delay) // a copy released twice would show up by now
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for n := range count {
		if got := seen[strconv.Itoa(n)]; got != 1 {
			t.Fatalf("delayed copy of %d handled %d times, want 1", n, got)
		}
	}
	if seen["sched"] != 1 || seen["dropped"] != 0 {
		t.Fatalf("scheduled from outside: %d (want 1), unscheduled: %d (want 0)", seen["sched"], seen["dropped"])
	}
	if len(early) > 0 {
		t.Fatalf("%d copies came before they were due (ms early): %v", len(early), early)
	}
	for p := range keys.Partitions {
		n, err := c.Do(context.Background(), c.B().Zcard().Key(pipeline.DelayedKey(keys.Stream("src", p))).Build()).AsInt64()
		if err != nil || n != 0 {
			t.Fatalf("partition %d still has %d delayed entries (err %v)", p, n, err)
		}
	}
}
