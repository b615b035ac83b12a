package deliver

import (
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// A batch sent at the provider's pace takes as long as its sends need at
// --tps: minutes under a low one. Status reads a process stuck when its
// handler held one batch past StuckAfter without moving, so deliver says it
// moves as its sends settle (pipeline.Batch.Progress): here a batch of 3 s
// at 40 sends/s against a StuckAfter of 1.5 s reads running throughout.
// (At 600 ms, a loaded box, load ~20 under -race, once let one gap between
// sends 25 ms apart pass it; 1.5 s is still half the batch's time, which a
// batch that says nothing outlasts.)
func TestBatchAtTheProvidersPaceIsNotStuck(t *testing.T) {
	const users, tps = 120, 40
	f := newFixture(t)
	f.seedDevices(users, false)
	f.createCampaign("c1", `{}`)
	f.startStageWith(Config{Senders: map[push.Platform]push.Sender{push.IOS: latentSender{time.Millisecond}}, TPS: tps},
		pipeline.Options{Stage: "deliver", Stream: pipeline.StreamDeliver, Consumer: "d1", Concurrency: 1, BatchSize: 1,
			Block: 100 * time.Millisecond, AliveEvery: 100 * time.Millisecond, StuckAfter: 1500 * time.Millisecond,
			ShutdownTimeout: 5 * time.Second})
	f.emitUsers("c1", userRange(users))
	state := func() pipeline.GroupTotal {
		t.Helper()
		st, err := pipeline.Status(f.ctx, f.rdb, f.keys, pipeline.StreamDeliver)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range st[0].Groups {
			if g.Name == "deliver" {
				return g
			}
		}
		return pipeline.GroupTotal{}
	}
	pipelinetest.Eventually(t, 10*time.Second, "deliver working", func() bool { return f.stats("c1")[pipeline.StatSent] > 0 })
	for f.stats("c1")[pipeline.StatUsersDone] < users {
		if g := state(); g.State == pipeline.StateStuck {
			t.Fatalf("with %d of %d sent at %d/s, deliver read stuck: %s", f.stats("c1")[pipeline.StatSent], users, tps, g.Plain(""))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
