package deliver

import (
	"sync"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// TestRedisRestartRepeatsNoSend: Redis goes away while sends are in flight
// and comes back with everything it had (AOF): what the provider answered
// meanwhile is recorded once Redis is back (the sent marks; for a dead
// token, its invalidation first), and no device gets a second request. No
// process died, so no send may repeat (DESIGN, guarantee 3); a mark or an
// invalidation that could not be written used to fail the round, whose
// retry sent to those devices again.
func TestRedisRestartRepeatsNoSend(t *testing.T) {
	tests := []struct {
		name   string
		status int // the provider's answer to every device
		reason string
	}{
		{name: "sent"},
		{name: "token unregistered", status: 410, reason: "Unregistered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := pipelinetest.RedisT(t, pipelinetest.RedisOptions{AOF: true})
			f := newFixtureOn(t, r.Addr)
			// Every write survives the restart: what a restart loses to
			// fsync's second is not what this test is about.
			if err := f.rdb.Do(f.ctx, f.rdb.B().ConfigSet().ParameterValue().ParameterValue("appendfsync", "always").Build()).Error(); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			requests := map[string]int{}
			fake := fakeprovider.Start(t, fakeprovider.Options{ForceStatus: func(token string) (int, string) {
				mu.Lock()
				defer mu.Unlock()
				requests[token]++
				return tt.status, tt.reason
			}})
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
			// Answered with Redis down: nothing of it can be written yet.
			pipelinetest.Eventually(t, 30*time.Second, "the held sends answered", func() bool {
				return fake.Summary().Requests >= uint64(held)
			})
			if err := r.Restart(); err != nil {
				t.Fatal(err)
			}
			f.waitDone("crestart", users, 60*time.Second)
			mu.Lock()
			defer mu.Unlock()
			for _, d := range devices {
				if n := requests[d.token]; n != 1 {
					t.Errorf("device %s got %d requests, want 1", d.token, n)
				}
			}
		})
	}
}
