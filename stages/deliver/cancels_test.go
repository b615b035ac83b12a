package deliver

import (
	"testing"
	"time"

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
