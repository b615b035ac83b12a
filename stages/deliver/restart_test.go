package deliver

import (
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// TestRedisRestartRepeatsNoSend: Redis goes away while sends are in flight
// and comes back with everything it had (AOF): the devices the provider
// accepted meanwhile are marked once it is back, and sent to once. No
// process died, so no send may repeat (DESIGN, guarantee 3); a mark that
// could not be written used to fail the round, whose retry sent to those
// devices again.
func TestRedisRestartRepeatsNoSend(t *testing.T) {
	r := pipelinetest.RedisT(t, pipelinetest.RedisOptions{AOF: true})
	f := newFixtureOn(t, r.Addr)
	// Every write survives the restart: what a restart loses to fsync's
	// second is not what this test is about.
	if err := f.rdb.Do(f.ctx, f.rdb.B().ConfigSet().ParameterValue().ParameterValue("appendfsync", "always").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	const users = 200
	devices := f.seedDevices(users, false)
	f.createCampaign("crestart", `{}`)
	f.emitUsers("crestart", userRange(users))
	release := fake.Hold()
	defer release()
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake)}, InFlight: 8}, "d1", 30*time.Second)
	pipelinetest.Eventually(t, 30*time.Second, "sends in flight", func() bool { return fake.Held() > 0 })

	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	held := fake.Held()
	release()
	// Answered with Redis down: their marks cannot be written yet.
	pipelinetest.Eventually(t, 30*time.Second, "the held sends answered", func() bool {
		return fake.Summary().Accepted >= uint64(held)
	})
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	f.waitDone("crestart", users, 60*time.Second)
	checkExactlyOnce(t, f, "crestart", devices, fake)
}
