package split_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/split"
)

// TestCampaignPastItsBookkeepingIsDeadLettered: a campaign entry read after
// the campaign's Redis state is due to be gone (a week after it expired: a
// dead letter retried, a Resplit of an old campaign) goes to the DLQ saying
// so, and nothing is cut: every checkpoint write would be expired as soon as
// written (the cut then started over from the top forever), and dedupe
// refuses a campaign whose expiry Redis no longer holds anyway.
func TestCampaignPastItsBookkeepingIsDeadLettered(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.subscribe("ch", []int64{1, 2, 3, 500})
	f.run(split.Config{RangeSize: 2, Segments: 1})
	if _, err := f.db.Exec(ctx, `INSERT INTO campaigns (id, app, channels, title, ttl_seconds, created_at)
		VALUES ('old', 'a', '{ch}', 't', 60, now() - interval '30 days')`); err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.Emit(ctx, f.rdb, pipeline.Message{
		Stream: f.keys.Stream(pipeline.StreamCampaigns, f.keys.HashPartition("old")),
		Fields: []string{pipeline.FieldCampaign, "old"}}); err != nil {
		t.Fatal(err)
	}
	var reason string
	pipelinetest.Eventually(t, 10*time.Second, "a dead letter", func() bool {
		xs, _ := f.rdb.Do(ctx, f.rdb.B().Xrange().Key(f.keys.DLQ()).Start("-").End("+").Build()).AsXRange()
		if len(xs) > 0 {
			reason = xs[0].FieldValues[pipeline.DLQError]
		}
		return len(xs) > 0
	})
	if !strings.Contains(reason, "expired") {
		t.Errorf("dead letter reason %q", reason)
	}
	if rs := f.ranges("old"); len(rs) != 0 {
		t.Errorf("%d ranges cut for it", len(rs))
	}
}
