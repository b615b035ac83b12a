package pipeline_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// A batch whose handler panicked is handled one entry at a time; the
// entries a stop came before were never handed to a handler alone, and
// get back their delivery: however many stops they wait through (twice
// MaxDeliveries here), they are never dead-lettered, and are handled once
// a process keeps running. The panic's own entry (the first, handled alone
// when each stop came) still counts each delivery and reaches the DLQ.
// Before, every stop counted one for the entries behind it too.
func TestAStopCountsNoDeliveryOfEntriesNotReached(t *testing.T) {
	t.Parallel()
	const maxDeliveries, stops, entries = 2, 4, 3
	c := client(t, env.Redis.Addr)
	keys := pipeline.NewKeys("ens"+strconv.FormatInt(time.Now().UnixNano(), 36), 1)
	produce(t, c, keys, "stc", entries) // n=0, the poison, first
	for stop := range stops {
		var alone atomic.Bool // an entry handled alone: the poison's retry, or the others' batch once it is dead
		run := runStc(t, c, keys, "c"+strconv.Itoa(stop/2), maxDeliveries, func(ctx context.Context, b *pipeline.Batch) error {
			for _, e := range b.Entries {
				if e.Fields["n"] == "0" {
					alone.Store(len(b.Entries) == 1)
					panic("poison")
				}
			}
			alone.Store(true)
			<-b.Stopping()
			return pipeline.ErrStopping
		})
		pipelinetest.Eventually(t, 10*time.Second, "an entry handled alone, or more than the poison dead-lettered", func() bool {
			return alone.Load() || xlen(t, c, keys.DLQ()) > 1
		})
		run()
		if dead := xlen(t, c, keys.DLQ()); dead > 1 {
			t.Fatalf("after %d stops (max deliveries %d): %d dead-lettered, want the poison alone", stop+1, maxDeliveries, dead)
		}
	}
	if dead := xlen(t, c, keys.DLQ()); dead != 1 {
		t.Fatalf("after %d stops (max deliveries %d): %d dead-lettered, want the poison", stops, maxDeliveries, dead)
	}
	var handled atomic.Int64
	run := runStc(t, c, keys, "c9", maxDeliveries, func(ctx context.Context, b *pipeline.Batch) error {
		for _, e := range b.Entries {
			if e.Fields["n"] == "0" {
				panic("poison")
			}
		}
		handled.Add(int64(len(b.Entries)))
		return nil
	})
	defer run()
	pipelinetest.Eventually(t, 20*time.Second, "the entries handled or dead-lettered", func() bool {
		return handled.Load()+xlen(t, c, keys.DLQ()) >= entries
	})
	if n, dead := handled.Load(), xlen(t, c, keys.DLQ()); n != entries-1 || dead != 1 {
		t.Errorf("after %d stops (max deliveries %d): %d handled, %d dead-lettered; want %d, 1 (the poison)", stops, maxDeliveries, n, dead, entries-1)
	}
}
