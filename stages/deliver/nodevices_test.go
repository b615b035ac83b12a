package deliver

import (
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// Targets with no device of the app are done with nothing sent, and counted
// in no_devices once however often their entries come: why sent falls
// short of targets (a chat message to members who never installed the app).
func TestTargetsWithoutDevicesAreCounted(t *testing.T) {
	f := newFixture(t)
	devices := int64(len(f.seedDevices(50, false)))
	f.createCampaign("c1", `{}`)
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: &NullSender{}}}, "d1", 30*time.Second)
	f.emitUsers("c1", userRange(60)) // 51–60 have none
	f.waitDone("c1", 60, 30*time.Second)
	f.emitUsers("c1", userRange(60)) // redelivered: counted once
	f.emitUsers("c1", []int64{61})
	f.waitDrained()
	if st := f.stats("c1"); st[pipeline.StatNoDevices] != 11 || st[pipeline.StatSent] != devices || st[pipeline.StatUsersDone] != 61 {
		t.Errorf("%v, want 11 with no devices, %d sent, 61 done", st, devices)
	}
}
