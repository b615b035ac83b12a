package deliver

import (
	"context"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// A campaign under its own cap is sent by rounds that each last as long as
// the whole campaign (every round gets a share of the rate). Its users are
// counted done as their devices are marked, not when their round ends:
// before, users_done stayed at 0 until the very end, and the progress bar
// and expected finish with it. Each user is still counted once.
func TestCappedCampaignCountsUsersAsTheyFinish(t *testing.T) {
	// Mostly waiting (40 sends a second); its bounds are counts.
	t.Parallel()
	const users, rate = 200, 40 // 5 s of sends, in a round per partition
	f := newFixture(t)
	devices := int64(len(f.seedDevices(users, false)))
	f.createCampaign("c1", `{}`)
	if _, err := f.db.Exec(f.ctx, `UPDATE campaigns SET rate_per_second = $1 WHERE id = 'c1'`, rate); err != nil {
		t.Fatal(err)
	}
	// Sends that take as long as a provider's answer: an instant sender's
	// jobs go in chunks of many permits, sent together.
	f.campaignHash("c1") // paced, its entries one after the other
	s := latentSender{2 * time.Millisecond}
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: s}}, "d1", 30*time.Second)
	f.emitUsers("c1", userRange(users))
	// The first users counted come while most devices are still to send:
	// counted at the round's end, none would be before the last send. Read
	// at the first count rather than at a share of the sends, a loaded box
	// that stalls the process and then sends a burst of permits cannot leave
	// the ticks behind the check (at 80% of the sends, a run at load 23 saw
	// 13 users done for 40 wanted).
	var first map[string]int64
	pipelinetest.Eventually(t, 30*time.Second, "some users done", func() bool {
		first = f.stats("c1")
		return first[pipeline.StatUsersDone] > 0
	})
	if sent := first[pipeline.StatSent]; sent >= devices*9/10 || first[pipeline.StatUsersDone] == users {
		t.Errorf("first users counted done (%d of %d) with %d of %d devices sent; want them before 90%% of the sends", first[pipeline.StatUsersDone], users, sent, devices)
	}
	f.waitDone("c1", users, 30*time.Second)
	time.Sleep(2 * doneEarlyEvery) // any late count would land by now
	if st := f.stats("c1"); st[pipeline.StatUsersDone] != users || st[pipeline.StatSent] != devices {
		t.Errorf("final counters %v: want %d users done and %d sent, each once", st, users, devices)
	}
}

// latentSender sends everything, each send taking the latency.
type latentSender struct{ latency time.Duration }

func (s latentSender) Send(ctx context.Context, n push.Notification) push.Result {
	time.Sleep(s.latency)
	return push.Result{Outcome: push.Sent, Status: 200}
}
