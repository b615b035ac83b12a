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

// Hasten moves the delayed entries whose fields begin with its prefix, and
// only those due later: not another campaign's whose id it begins (c1 and
// c10), not one due sooner, and not one released meanwhile (ZADD XX).
func TestHastenMovesTheEntriesOfItsPrefix(t *testing.T) {
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	ctx := t.Context()
	stream := keys.Stream("hasten", 0)
	now, later := time.Now(), time.Now().Add(time.Hour)
	msg := func(campaign, n string) pipeline.Message {
		return pipeline.Message{Stream: stream, Fields: []string{"campaign", campaign, "u", n + "*?[\\"}}
	}
	if err := pipeline.EmitAt(ctx, c, later, msg("c1", "a"), msg("c1", "b"), msg("c10", "c"), msg("c*", "d")); err != nil {
		t.Fatal(err)
	}
	sooner := now.Add(-time.Minute)
	if err := pipeline.EmitAt(ctx, c, sooner, msg("c1", "e")); err != nil {
		t.Fatal(err)
	}
	n, err := pipeline.Hasten(ctx, c, stream, now, "campaign", "c1")
	if err != nil || n != 2 {
		t.Fatalf("hasten c1: %d %v, want 2 moved", n, err)
	}
	for _, tt := range []struct {
		m    pipeline.Message
		want time.Time
	}{
		{msg("c1", "a"), now}, {msg("c1", "b"), now}, {msg("c10", "c"), later}, {msg("c*", "d"), later}, {msg("c1", "e"), sooner},
	} {
		at, ok, err := pipeline.ScheduledAt(ctx, c, tt.m)
		if err != nil || !ok || at.UnixMilli() != tt.want.UnixMilli() {
			t.Errorf("%v: due %v %v %v, want %v", tt.m.Fields, at, ok, err, tt.want)
		}
	}
	if _, err := pipeline.Unschedule(ctx, c, msg("c1", "a")); err != nil {
		t.Fatal(err)
	}
	if n, err := pipeline.Hasten(ctx, c, stream, now.Add(-time.Hour), "campaign", "c1"); err != nil || n != 2 {
		t.Fatalf("hasten to an hour ago: %d %v, want 2 (b and e; a released)", n, err)
	}
	if _, ok, _ := pipeline.ScheduledAt(ctx, c, msg("c1", "a")); ok {
		t.Error("an entry released meanwhile was added back")
	}
}
