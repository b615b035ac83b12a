package deliver

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	campaignrow "github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// A direct message cannot be canceled: deliver sends it without watching its
// cancel flag (the watcher reads every flag it watches each
// campaign.CancelPoll for a minute: at 200 messages a second, 60,000 reads a
// second per process), and watches a campaign's.
func TestMessagesAreNotWatchedForCancels(t *testing.T) {
	f := newFixture(t)
	f.seedDevices(50, false)
	f.createCampaign("c1", `{}`)
	f.createCampaign("m1", `{}`)
	if _, err := f.db.Exec(f.ctx, `UPDATE campaigns SET kind = 'message' WHERE id = 'm1'`); err != nil {
		t.Fatal(err)
	}
	f.emitUsers("c1", userRange(50))
	f.emitUsers("m1", userRange(50))
	s := f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: &NullSender{}}}, "d1", 30*time.Second)
	f.waitDone("c1", 50, 30*time.Second)
	f.waitDone("m1", 50, 30*time.Second)
	if n := s.h.life.cancels.Watching(); n != 1 {
		t.Errorf("deliver watches %d cancel flags, want 1: the campaign's, not the message's", n)
	}
}

// Users left unsent by a cancel are not done: a canceled campaign's
// progress (users done of targets, the bar of status, campaigns list and
// the console) shows the people it reached, not 100%.
func TestCanceledUsersAreNotDone(t *testing.T) {
	f := newFixture(t)
	f.seedDevices(50, false)
	f.createCampaign("c-live", `{}`)
	f.createCampaign("c-stopped", `{}`)
	if _, err := campaignrow.Cancel(f.ctx, f.rdb, f.db, f.keys, "c-stopped"); err != nil {
		t.Fatal(err)
	}
	f.emitUsers("c-stopped", userRange(50))
	f.emitUsers("c-live", userRange(50))
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: &NullSender{}}}, "d1", 30*time.Second)
	f.waitDone("c-live", 50, 30*time.Second)
	f.waitDrained()
	if s := f.stats("c-stopped"); s[pipeline.StatUsersDone] != 0 || s[pipeline.StatSent] != 0 {
		t.Errorf("canceled campaign: %v, want nobody sent or done", s)
	}
}

// timedSender sends everything and keeps when each send started.
type timedSender struct {
	mu sync.Mutex
	at []time.Time
}

func (s *timedSender) Send(ctx context.Context, n push.Notification) push.Result {
	s.mu.Lock()
	s.at = append(s.at, time.Now())
	s.mu.Unlock()
	return push.Result{Outcome: push.Sent, Status: 200}
}

func (s *timedSender) started() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.at)
}

// A send waits for its permits after its feeder asked whether the campaign
// was canceled; meanwhile the watcher may forget the campaign (nobody asked
// for a minute: a slow campaign cap, a provider at its cap). The check
// right before the send then reads the flag, instead of taking a campaign
// it no longer watches for a live one: no send starts after the cancel's
// bound (DESIGN, guarantee 7).
func TestCancelStopsSendsOfAForgottenCampaign(t *testing.T) {
	f := newFixture(t)
	f.seedDevices(5, false)
	f.createCampaign("c1", `{}`)
	// One send a second: each later send waits seconds for its permit.
	if _, err := f.db.Exec(f.ctx, `UPDATE campaigns SET rate_per_second = 1 WHERE id = 'c1'`); err != nil {
		t.Fatal(err)
	}
	s := &timedSender{}
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: s}, cancelForget: time.Millisecond}, "d1", 30*time.Second)
	f.emitUsers("c1", userRange(5))
	pipelinetest.Eventually(t, 10*time.Second, "a first send", func() bool { return len(s.started()) > 0 })
	if _, err := campaignrow.Cancel(f.ctx, f.rdb, f.db, f.keys, "c1"); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	time.Sleep(3500 * time.Millisecond) // the cap's next permits come at 1, 2 and 3 s: some well past the bound
	// DESIGN's guarantee 7 (see TestCanceledCappedCampaignLetsGoOfItsEntries):
	// CancelPoll is a cadence a loaded machine stretches, 1 s the bound.
	for _, at := range s.started() {
		if late := at.Sub(returned); late > time.Second {
			t.Errorf("a send started %v after the cancel returned", late)
		}
	}
}

// TestCancelWithItsFlagLost: a campaign canceled whose flag Redis lost (a
// failover, the AOF's last second), and nobody reading it to set the flag
// again: deliver reads the records of the campaigns it sends and stops it.
// Before, it sent the rest.
func TestCancelWithItsFlagLost(t *testing.T) {
	f := newFixture(t)
	const users = 40
	f.seedDevices(users, false)
	f.createCampaign("c1", `{}`)
	// Two sends a second: the rest would take 20 s.
	if _, err := f.db.Exec(f.ctx, `UPDATE campaigns SET rate_per_second = 2 WHERE id = 'c1'`); err != nil {
		t.Fatal(err)
	}
	s := &timedSender{}
	st := f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: s}}, "d1", 30*time.Second)
	f.emitUsers("c1", userRange(users))
	pipelinetest.Eventually(t, 10*time.Second, "a first send", func() bool { return len(s.started()) > 0 })
	// Canceled in its record only: the flag is lost.
	if _, err := f.db.Exec(f.ctx, `UPDATE campaigns SET state = 'canceled', finished_at = now() WHERE id = 'c1'`); err != nil {
		t.Fatal(err)
	}
	var seen time.Time
	pipelinetest.Eventually(t, 30*time.Second, "deliver sees the cancel", func() bool {
		canceled, err := st.h.life.cancels.Canceled(f.ctx, "c1")
		seen = time.Now()
		return err == nil && canceled
	})
	time.Sleep(2 * time.Second) // four permits' time
	late := 0
	for _, at := range s.started() {
		if at.After(seen.Add(campaignrow.CancelPoll)) {
			late++
		}
	}
	if n := len(s.started()); late > 0 || n >= users {
		t.Errorf("%d of %d sends started after deliver saw the cancel", late, n)
	}
}
