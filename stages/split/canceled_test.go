package split_test

import (
	"context"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/split"
)

// TestLostCancelFlagIsSetAgainBySplit: a capped campaign is cut in calls,
// and split reads its record at each. It was canceled, and Redis lost the
// flag (a failover): resolve, dedupe and deliver read the flag alone and
// would send the ranges already cut, unless someone reads its progress.
// Split, finding the record canceled at its next call, drops the campaign
// as before, and sets its flag again: the stages stop without a reader.
func TestLostCancelFlagIsSetAgainBySplit(t *testing.T) {
	f := newFixture(t)
	f.subscribe("ch", upTo(1000))
	f.run(split.Config{RangeSize: 100, Segments: 1, PacedAhead: 20 * time.Second})
	ctx := context.Background()
	if _, _, err := campaign.Create(ctx, f.rdb, f.db, f.keys,
		campaign.Campaign{ID: "lc", App: "a", Channels: []string{"ch"}, Title: "t", RatePerSecond: 5}); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 10*time.Second, "the campaign requeued", func() bool { _, ok := f.requeuedIn("lc"); return ok })
	if _, err := campaign.Cancel(ctx, f.rdb, f.db, f.keys, "lc"); err != nil {
		t.Fatal(err)
	}
	if err := f.rdb.Do(ctx, f.rdb.B().Del().Key(f.keys.Canceled("lc")).Build()).Error(); err != nil { // lost
		t.Fatal(err)
	}
	f.due("lc")
	cs := campaign.NewCancels(f.rdb, f.keys)
	pipelinetest.Eventually(t, 10*time.Second, "the stages see it canceled after split's next call", func() bool {
		canceled, err := cs.Canceled(ctx, "lc")
		return err == nil && canceled
	})
	pipelinetest.Eventually(t, 10*time.Second, "the entry acked", func() bool {
		_, waits := f.requeuedIn("lc")
		n, err := pipeline.Outstanding(ctx, f.rdb, f.keys.Streams(pipeline.StreamCampaigns), "split")
		return !waits && err == nil && n == 0
	})
	if n := len(f.ranges("lc")); n != 1 {
		t.Errorf("%d ranges, want the one cut before the cancel", n)
	}
}
