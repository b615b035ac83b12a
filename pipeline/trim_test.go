package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
)

// (c) Trimming with a lagging group never removes an unread or pending entry,
// nor anything inside the retention window.
func TestTrimKeepsUnreadAndPending(t *testing.T) {
	ctx := context.Background()
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	s := keys.Stream("src", 0)
	for _, g := range []string{"fast", "slow"} {
		if err := pipeline.CreateGroup(ctx, c, s, g); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for i := range 100 {
		got, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: s, Fields: []string{"n", string(rune('a' + i%26))}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
	}
	read := func(g string, n int64) []string {
		res, err := c.Do(ctx, c.B().Xreadgroup().Group(g, "c").Count(n).Streams().Key(s).Id(">").Build()).AsXRead()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range res[s] {
			out = append(out, e.ID)
		}
		return out
	}
	ack := func(g string, ids ...string) {
		if err := c.Do(ctx, c.B().Xack().Key(s).Group(g).Id(ids...).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	ack("fast", read("fast", 100)...)
	slow := read("slow", 60) // 60 read; acks 0-29 and 40-59; 30-39 stay pending; 60-99 unread
	ack("slow", slow[:30]...)
	ack("slow", slow[40:]...)

	// Inside the retention window nothing goes, even acknowledged by all.
	if n, err := pipeline.Trim(ctx, c, s, time.Hour, time.Now()); err != nil || n != 0 {
		t.Fatalf("trim inside retention removed %d (err %v), want 0", n, err)
	}
	// Past retention: only entries below the slow group's oldest pending go.
	n, err := pipeline.Trim(ctx, c, s, 0, time.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	left, err := c.Do(ctx, c.B().Xrange().Key(s).Start("-").End("+").Build()).AsXRange()
	if err != nil {
		t.Fatal(err)
	}
	if n != 30 || len(left) != 70 || left[0].ID != ids[30] {
		t.Fatalf("trim removed %d, left %d starting at %s; want 30 removed, 70 left from the oldest pending %s", n, len(left), left[0].ID, ids[30])
	}
	// Once the pending ones are acked, the trim point moves to the slow
	// group's last-delivered id: the 40 unread entries stay.
	ack("slow", slow[30:40]...)
	if _, err := pipeline.Trim(ctx, c, s, 0, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	left, _ = c.Do(ctx, c.B().Xrange().Key(s).Start("-").End("+").Build()).AsXRange()
	if len(left) != 41 || left[0].ID != ids[59] {
		t.Fatalf("left %d entries from %s; want the last delivered %s and the 40 unread", len(left), left[0].ID, ids[59])
	}
	// A stream with no group yet is never trimmed: its first consumer has
	// not started and everything is unread.
	lonely := keys.Stream("lonely", 0)
	pipeline.Emit(ctx, c, pipeline.Message{Stream: lonely, Fields: []string{"n", "1"}})
	if n, err := pipeline.Trim(ctx, c, lonely, 0, time.Now().Add(time.Second)); err != nil || n != 0 {
		t.Fatalf("trim of a group-less stream removed %d (err %v)", n, err)
	}
}

// Backpressure waits while the downstream group has too much outstanding.
func TestBackpressureWaitsForTheConsumer(t *testing.T) {
	ctx := context.Background()
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	s := keys.Stream("down", 0)
	pipeline.CreateGroup(ctx, c, s, "g")
	produce(t, c, keys, "down", 0)
	for range 50 {
		pipeline.Emit(ctx, c, pipeline.Message{Stream: s, Fields: []string{"n", "x"}})
	}
	bp := &pipeline.Backpressure{Client: c, Streams: []string{s}, Group: "g", HighWater: 10, Interval: 20 * time.Millisecond}
	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := bp.Wait(tctx); err == nil {
		t.Fatal("Wait returned with 50 entries outstanding above a high-water mark of 10")
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		res, _ := c.Do(ctx, c.B().Xreadgroup().Group("g", "c").Count(100).Streams().Key(s).Id(">").Build()).AsXRead()
		var ids []string
		for _, e := range res[s] {
			ids = append(ids, e.ID)
		}
		c.Do(ctx, c.B().Xack().Key(s).Group("g").Id(ids...).Build())
	}()
	wctx, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	if err := bp.Wait(wctx); err != nil {
		t.Fatalf("Wait did not return after the consumer caught up: %v", err)
	}
}
