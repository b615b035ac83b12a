package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/bench/localserver"
)

// outlast's decision once Redis answers, on a real Redis: a batch is tried
// again only if every entry is still pending for this consumer and a keep
// of it failed since its tries began. In particular not when another
// consumer claimed an entry and acked it (handled it through) between our
// keeps: the keep then finds it neither ours nor taken, and a retry would
// handle it a second time (TestBatchOutlastsRedisOutage's second row caught
// this under load, 2 runs in 5).
func TestOutlastDecides(t *testing.T) {
	c := redisClient(t)
	tests := []struct {
		name    string
		other   string // what the other consumer did to the first entry: "", "claimed", "acked"
		unkept  bool   // a keep of the batch failed since its tries began
		part    bool   // the batch tried is a part of it, its first entry (processEach)
		wantTry bool
	}{
		{"every entry ours, Redis failed it", "", true, false, true},
		{"every entry ours, Redis answered all along", "", false, false, false},
		{"one claimed by another consumer", "claimed", true, false, false},
		{"one claimed and acked by another consumer", "acked", true, false, false},
		// The keep is the whole batch's: a part sees its failures too.
		{"a part, Redis failed the batch", "", true, true, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, b := ownedBatch(t, c, "ol"+string(rune('a'+i)), tt.other, false)
			since := time.Now().Add(-time.Second).UnixNano()
			if tt.unkept {
				b.unkept.Store(time.Now().UnixNano())
			}
			if tt.part {
				b = &Batch{Stream: b.Stream, Entries: b.Entries[:1], parent: b}
			}
			if got := r.outlast(t.Context(), b, since); got != tt.wantTry {
				t.Errorf("outlast = %v, want %v", got, tt.wantTry)
			}
		})
	}
}

// A commit with dead letters checks the batch is still ours first (the DLQ
// is in another slot than the ownership-checked script): an entry another
// consumer claimed, or claimed and handled through (acked), is that
// consumer's, and a dead letter of ours would be a second one, or one for
// work that succeeded. An entry our own earlier try acked is not a reason.
func TestCommitWithDeadLettersChecksOwnership(t *testing.T) {
	c := redisClient(t)
	tests := []struct {
		name      string
		other     string // what another consumer did to the first entry
		selfAcked bool   // our earlier try acked the first entry
		wantLost  bool
	}{
		{"every entry ours", "", false, false},
		{"one claimed by another consumer", "claimed", false, true},
		{"one claimed and acked by another consumer", "acked", false, true},
		{"one acked by our earlier try", "", true, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, b := ownedBatch(t, c, "cm"+string(rune('a'+i)), tt.other, tt.selfAcked)
			b.selfAcked = tt.selfAcked
			b.DeadLetter(0, errors.New("poison"))
			_, err := r.commit(t.Context(), b)
			if lost := errors.Is(err, ErrLostOwnership); lost != tt.wantLost || err != nil && !lost {
				t.Fatalf("commit: %v; want lost ownership %v", err, tt.wantLost)
			}
			dead, err := c.Do(t.Context(), c.B().Xlen().Key(r.keys.DLQ()).Build()).AsInt64()
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int64{true: 0, false: 1}[tt.wantLost]; dead != want {
				t.Errorf("%d dead letters, want %d", dead, want)
			}
		})
	}
}

// The background keep of a batch in hand stops it (Lost) once an entry is
// no longer this consumer's: another consumer claimed it, or claimed it and
// handled it through (acked it: only a commit acks). Entries acked by a
// commit of our own, the batch's or one of its parts' (processEach, one
// entry at a time), are not a reason.
func TestKeepClaimedSeesTheBatchLost(t *testing.T) {
	c := redisClient(t)
	tests := []struct {
		name     string
		other    string // what another consumer did to the first entry
		ourPart  bool   // a part of the batch, the first entry, committed by us
		wantLost bool
	}{
		{"every entry ours", "", false, false},
		{"one claimed by another consumer", "claimed", false, true},
		{"one claimed and acked by another consumer", "acked", false, true},
		{"one acked by our part's commit", "", true, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, b := ownedBatch(t, c, "kc"+string(rune('a'+i)), tt.other, false)
			r.opts.KeepEvery = 20 * time.Millisecond
			if tt.ourPart {
				part := &Batch{Stream: b.Stream, Entries: b.Entries[:1], parent: b}
				if _, err := r.commit(t.Context(), part); err != nil {
					t.Fatal(err)
				}
			}
			stop := r.keepClaimed(b)
			defer stop()
			select {
			case <-b.Lost():
				if !tt.wantLost {
					t.Error("batch lost, want it kept")
				}
			case <-time.After(50 * r.opts.KeepEvery):
				if tt.wantLost {
					t.Error("batch kept, want it lost")
				}
			}
		})
	}
}

// ownedBatch is a runner of consumer d1 on its own keys, and a batch of two
// entries d1 read; other says what consumer d2 did to the first one since
// ("claimed", "acked": claimed and acked, or ""), ackedByUs that d1 acked it.
func ownedBatch(t *testing.T, c rueidis.Client, prefix, other string, ackedByUs bool) (*Runner, *Batch) {
	t.Helper()
	do := func(cmd rueidis.Completed) rueidis.RedisResult { return c.Do(t.Context(), cmd) }
	keys := NewKeys(prefix, 1)
	stream := keys.Stream(StreamDedupe, 0)
	r := NewRunner(c, keys, Options{Stage: "dedupe", Stream: StreamDedupe, Consumer: "d1"}, HandlerFunc(func(context.Context, *Batch) error { return nil }), zerolog.Nop(), nil)
	if err := do(c.B().XgroupCreate().Key(stream).Group("dedupe").Id("0").Mkstream().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	b := &Batch{Stream: stream}
	for range 2 {
		id, err := do(c.B().Xadd().Key(stream).Id("*").FieldValue().FieldValue("n", "1").Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		b.Entries = append(b.Entries, Entry{ID: id, Fields: map[string]string{"n": "1"}})
	}
	if err := do(c.B().Xreadgroup().Group("dedupe", "d1").Count(2).Streams().Key(stream).Id(">").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	first := b.Entries[0].ID
	if other != "" {
		if err := do(c.B().Xclaim().Key(stream).Group("dedupe").Consumer("d2").MinIdleTime("0").Id(first).Justid().Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	if other == "acked" || ackedByUs {
		if err := do(c.B().Xack().Key(stream).Group("dedupe").Id(first).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	return r, b
}

// redisClient starts a Redis server for one test and a client of it.
func redisClient(t *testing.T) rueidis.Client {
	t.Helper()
	redis, err := localserver.StartRedis(localserver.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { redis.Close() })
	c, err := NewRedis(redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}
