package webhook_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// TestTrickleIsPostedInFewPOSTs: events that come one results entry at a
// time (a rate-capped campaign, direct messages) reach the receiver in a
// few POSTs, not one each: a POST per entry is the flood of small
// callbacks that took a receiver's own API down. 40 entries, 20 ms apart,
// in one partition, with --linger 1s: ~1 s of trickle, so 2 or 3 POSTs;
// without lingering each read takes the one entry there is.
func TestTrickleIsPostedInFewPOSTs(t *testing.T) {
	const n = 40
	f := newFixture(t)
	secrets := f.writeSecrets(testSecret)
	rcv := f.startReceiver(testSecret)
	f.startStage("webhook", f.stageArgs("webhook", "--url", rcv.url(), "--secret-file", secrets, "--linger", "1s")...)
	var users []int64
	for u := int64(1); len(users) < n; u++ {
		if f.keys.UserPartition(u) == 0 {
			users = append(users, u)
		}
	}
	for i, u := range users {
		ev := pipeline.ResultEvent{ID: pipeline.ResultID("c1", "", int64(i), pipeline.OutcomeSent), Campaign: "c1", App: "app1",
			UserID: u, Platform: "ios", Token: "tok" + strconv.Itoa(i), Outcome: pipeline.OutcomeSent, AtMs: time.Now().UnixMilli()}
		if _, err := pipeline.Emit(f.ctx, f.rdb, pipeline.Message{Stream: f.keys.Stream(pipeline.StreamResults, 0), Fields: pipeline.ResultFields(ev)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	pipelinetest.Eventually(t, time.Minute, "every event at the receiver", func() bool { return len(accepted(rcv.posts())) == n })
	if posts := len(rcv.posts()); posts > 8 {
		t.Errorf("%d events came in %d POSTs, want a few (the trickle lasted ~1 s, --linger 1s)", n, posts)
	}
}
