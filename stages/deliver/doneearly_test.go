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
	var at80 map[string]int64
	pipelinetest.Eventually(t, 30*time.Second, "80% of the devices sent", func() bool {
		at80 = f.stats("c1")
		return at80[pipeline.StatSent] >= devices*8/10
	})
	// At 40/s the sends before 80% took over 4 s: users finished by then were
	// counted at the round's ticks.
	if done := at80[pipeline.StatUsersDone]; done < users/5 || at80[pipeline.StatUsersDone] == users {
		t.Errorf("with %d of %d devices sent, %d users done; want at least %d and not all", at80[pipeline.StatSent], devices, done, users/5)
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
