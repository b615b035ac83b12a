package webhook_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// TestLateAnswerIsRedeliveredWhole: a receiver that takes a POST but answers
// 200 only after the stage's --timeout has it again, whole: the same events,
// same ids and content, and no other event twice. (The first POSTs arrive
// before any answer, so which ones are late is the receiver's count.)
func TestLateAnswerIsRedeliveredWhole(t *testing.T) {
	t.Parallel() // mostly waiting (late answers, --claim-idle), on keys and processes of its own
	const n, batch = 60, 10
	f := newFixture(t)
	evs := f.emitEvents("c1", n, pipeline.OutcomeSent, pipeline.OutcomeInvalid)
	secrets := f.writeSecrets(testSecret)
	rcv := f.startReceiver(testSecret, "-slow-posts", "2", "-slow", "3s")
	// A POST past --timeout leaves its batch for redelivery after
	// --claim-idle: 2 s rather than the default 10 s the test waited out.
	f.startStage("webhook", f.stageArgs("webhook", "--url", rcv.url(), "--secret-file", secrets, "--batch", "10",
		"--timeout", "500ms", "--retry-base", "10ms", "--retry-max", "50ms", "--claim-idle", "2s")...)
	pipelinetest.Eventually(t, time.Minute, "every event", func() bool { return len(accepted(rcv.posts())) >= n })
	// The late answers come 3 s after their POSTs; nothing may follow them.
	time.Sleep(4 * time.Second)
	posts := rcv.posts()
	got := accepted(posts)
	for _, e := range evs {
		if got[e.ID] != e {
			t.Errorf("event %s: got %+v, want %+v", e.ID, got[e.ID], e)
		}
	}
	// Each POST's events by id; an event POSTed again comes with the same
	// company.
	batchOf := map[string]string{}
	again := 0
	for _, p := range posts {
		ids := make([]string, len(p.Events))
		for i, e := range p.Events {
			ids[i] = e.ID
		}
		set := strings.Join(slices.Sorted(slices.Values(ids)), ",")
		for _, id := range ids {
			prev, seen := batchOf[id]
			switch {
			case !seen:
				batchOf[id] = set
			case prev != set:
				t.Errorf("event %s POSTed again in another batch: first with %s, then with %s", id, prev, set)
			default:
				again++
			}
		}
	}
	if again < 2*batch {
		t.Errorf("%d events POSTed again, want at least the %d of the two late POSTs (was the receiver late?)", again, 2*batch)
	}
	t.Logf("%d POSTs, %d events, %d of them POSTed again (%v)", len(posts), len(batchOf), again, slices.Sorted(maps.Keys(statusCount(posts))))
}

// statusCount counts POSTs by the receiver's answer.
func statusCount(posts []post) map[int]int {
	m := map[int]int{}
	for _, p := range posts {
		m[p.Status]++
	}
	return m
}
