package pipeline_test

import (
	"context"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// A blocking read the stop cuts counts no delivery: Redis served the
// runner's blocked XREADGROUP (the entry is pending for it, delivered
// once), but the answer is held in the network (a proxy) when the runner
// stops, and never reaches it. The entry, never handled, was claimed later
// as its second delivery: with --max-deliveries 1 it went to the DLQ
// unhandled, and every such stop took one handling from an entry's budget.
// The stop gives the delivery back, as it does for a claim it cuts.
func TestAStopCutReadCountsNoDelivery(t *testing.T) {
	t.Parallel()
	redis := pipelinetest.RedisT(t, pipelinetest.RedisOptions{}) // its own: its clients are the runner's
	c := client(t, redis.Addr)
	proxy := pipelinetest.ProxyT(t, redis.Addr, 0)
	keys := pipeline.NewKeys("rcut", 1)
	stream := keys.Stream("scl", 0)
	var handled atomic.Int64
	r := pipeline.NewRunner(client(t, proxy.Addr), keys, pipeline.Options{Stage: "scl", Stream: "scl", Consumer: "c1", Concurrency: 1,
		ClaimIdle: time.Minute, Block: 10 * time.Second, ShutdownTimeout: time.Second},
		pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
			handled.Add(int64(len(b.Entries)))
			return nil
		}), zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	pipelinetest.Eventually(t, 10*time.Second, "the runner ready", r.Ready)
	pipelinetest.Eventually(t, 10*time.Second, "the runner's read blocked at Redis", func() bool {
		list, err := c.Do(t.Context(), c.B().ClientList().Build()).ToString()
		return err == nil && regexp.MustCompile(`flags=b .*cmd=xreadgroup`).MatchString(list)
	})
	proxy.Hold()
	if err := c.Do(t.Context(), c.B().Xadd().Key(stream).Id("*").FieldValue().FieldValue("n", "0").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 10*time.Second, "the entry delivered to the blocked read", func() bool {
		return pendingRow(t, c, stream) != nil
	})
	cancel()
	time.Sleep(100 * time.Millisecond) // the read cut, its connection closed
	proxy.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := handled.Load(); n != 0 {
		t.Fatalf("handled %d entries; the read's answer was to be lost", n)
	}
	row := pendingRow(t, c, stream)
	if row == nil {
		t.Fatal("the entry is no longer pending")
	}
	owner, _ := row[1].ToString()
	count, _ := row[3].AsInt64()
	if count != 0 {
		t.Errorf("after a stop that cut the read: pending for %s, delivered %d times; want 0 (never handled)", owner, count)
	}
}
