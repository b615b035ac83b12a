package split_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/split"
)

// TestResplitAfterRangesWereLost: Redis lost a campaign's ranges but not
// its split checkpoint (on a cluster, a failover of the node holding the
// ranges partitions to a replica that had not received them; the
// checkpoint lives on another). `pushpipe replay --resplit` cuts the
// campaign again, the same ranges. The old code resumed from the
// checkpoint, found every segment done and cut nothing: the campaign
// stayed running forever with those users never sent.
func TestResplitAfterRangesWereLost(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	users := make([]int64, 500)
	for i := range users {
		users[i] = int64(3*i + 1)
	}
	f.subscribe("ch", users)
	f.run(split.Config{RangeSize: 100, Segments: 1})
	f.create("c", "ch")
	pipelinetest.Eventually(t, 10*time.Second, "split done", func() bool { return f.splitDone("c") })
	first := f.ranges("c")
	for _, s := range f.keys.Streams(pipeline.StreamRanges) {
		if err := f.rdb.Do(ctx, f.rdb.B().Del().Key(s).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := campaign.Resplit(ctx, f.rdb, f.db, f.keys, "c"); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 10*time.Second, "the campaign cut again", func() bool {
		return f.splitDone("c") && len(f.ranges("c")) >= len(first)
	})
	if again := f.ranges("c"); !slices.Equal(again, first) {
		t.Fatalf("cut again as %+v, first as %+v", again, first)
	}
}
