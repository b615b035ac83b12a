package pipeline_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// A process's own claim of an entry it still has in hand (its keep came
// later than ClaimIdle: here never, KeepEvery far above it) is no
// delivery: however many times the claim re-takes it while the handler
// works (three at least here, MaxDeliveries 2), it is never dead-lettered
// and its delivery count stays what its read, or another consumer's
// claim, made it. Before, each such claim counted one, and the third
// dead-lettered the entry while its handler was still on it.
func TestASelfClaimCountsNoDelivery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		readFirst bool  // another consumer read it first (and died): this one claims it, which counts
		want      int64 // its delivery count while held
	}{
		{name: "read by this process", want: 1},
		{name: "claimed from another consumer", readFirst: true, want: 2},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := client(t, env.Redis.Addr)
			keys := pipeline.NewKeys("scl"+strconv.Itoa(i)+strconv.FormatInt(time.Now().UnixNano(), 36), 1)
			stream := keys.Stream("scl", 0)
			produce(t, c, keys, "scl", 1)
			if tt.readFirst {
				if err := pipeline.CreateGroup(t.Context(), c, stream, "scl"); err != nil {
					t.Fatal(err)
				}
				read := c.B().Xreadgroup().Group("scl", "gone").Count(1).Streams().Key(stream).Id(">").Build()
				if err := c.Do(t.Context(), read).Error(); err != nil {
					t.Fatal(err)
				}
			}
			var handled atomic.Int64
			r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "scl", Stream: "scl", Consumer: "c1", Concurrency: 1,
				MaxDeliveries: 2, ClaimIdle: pipeline.MinClaimIdle, KeepEvery: time.Hour, Block: 50 * time.Millisecond,
				ShutdownTimeout: 300 * time.Millisecond},
				pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
					handled.Add(int64(len(b.Entries)))
					// Held to the stop's cut, when the claims stopped: then
					// left pending, counted, for the count to be read.
					<-ctx.Done()
					b.Fail(0, errors.New("held"))
					return nil
				}), zerolog.Nop(), nil)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			pipelinetest.Eventually(t, 10*time.Second, "the entry handled", func() bool { return handled.Load() > 0 })
			// Each claim of the held entry starts its idle time again: seen
			// as the idle time going down. Not a clock: under load it only
			// takes longer.
			var reclaims int
			last := int64(-1)
			pipelinetest.Eventually(t, 60*time.Second, "three claims of the held entry", func() bool {
				row := pendingRow(t, c, stream)
				if row == nil {
					return true // acked: dead-lettered
				}
				idle, _ := row[2].AsInt64()
				if idle < last {
					reclaims++
				}
				last = idle
				return reclaims >= 3
			})
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			row := pendingRow(t, c, stream)
			if row == nil {
				t.Fatalf("the held entry is no longer pending after %d claims of it (dead letters: %d)", reclaims, xlen(t, c, keys.DLQ()))
			}
			owner, _ := row[1].ToString()
			count, _ := row[3].AsInt64()
			if owner != "c1" || count != tt.want {
				t.Errorf("held across %d claims of its own: pending for %s, delivered %d times; want c1, %d", reclaims, owner, count, tt.want)
			}
			if n, dead := handled.Load(), xlen(t, c, keys.DLQ()); n != 1 || dead != 0 {
				t.Errorf("handled %d times, %d dead letters; want 1, 0", n, dead)
			}
		})
	}
}

// pendingRow is the XPENDING row (id, consumer, idle, count) of the one
// entry pending in stream's group scl, nil if none is.
func pendingRow(t *testing.T, c rueidis.Client, stream string) []rueidis.RedisMessage {
	t.Helper()
	rows, err := c.Do(t.Context(), c.B().Xpending().Key(stream).Group("scl").Start("-").End("+").Count(10).Build()).ToArray()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		return nil
	}
	row, err := rows[0].ToArray()
	if err != nil || len(row) < 4 {
		t.Fatalf("xpending row %v: %v", rows[0], err)
	}
	return row
}

func xlen(t *testing.T, c rueidis.Client, key string) int64 {
	t.Helper()
	n, err := c.Do(t.Context(), c.B().Xlen().Key(key).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
