package deliver

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// TestForcedRoundRetriesOnlyWhatFailed: a campaign went out, then an
// operator's `replay --force` resends it, and the provider fails some
// devices transiently during the forced round. Each device is to get the
// resend once: the retry resends the failed devices only (forcing it whole
// sent a third copy to the devices the provider had taken), and when their
// budget runs out, `dlq retry` resends them (a plain dead letter was
// skipped: the devices were marked by the first send).
func TestForcedRoundRetriesOnlyWhatFailed(t *testing.T) {
	const attempts = 3
	tests := []struct {
		name     string
		failures int // answers of 503 each flaky device gets in the forced round
	}{
		{"retried", 1},
		{"dead-lettered, then dlq retry", attempts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			const users = 40
			var (
				ids     []int64
				devices []testDevice
				flaky   = map[string]bool{}
			)
			for u := int64(1); u <= users; u++ {
				ids = append(ids, u)
				devices = append(devices, testDevice{u, push.IOS, iosToken(u, 0)}, testDevice{u, push.IOS, iosToken(u, 1)})
				if u%2 == 0 {
					flaky[iosToken(u, 1)] = true
				}
			}
			var (
				forced atomic.Bool
				mu     sync.Mutex
				failed = map[string]int{}
			)
			fake := fakeprovider.Start(t, fakeprovider.Options{ForceStatus: func(token string) (int, string) {
				if !forced.Load() || !flaky[token] {
					return 0, ""
				}
				mu.Lock()
				defer mu.Unlock()
				if failed[token] < tt.failures {
					failed[token]++
					return 503, "ServiceUnavailable"
				}
				return 0, ""
			}})
			f.insertDevices(devices)
			f.createCampaign("cforce", `{}`)
			f.emitUsers("cforce", ids)
			f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake)},
				MaxAttempts: attempts, RetryBase: 10 * time.Millisecond}, "d1", 30*time.Second)
			f.waitDone("cforce", users, 30*time.Second)
			quiet := func() bool { return f.pendingEntries() == 0 && f.retriesLeft() == 0 }
			pipelinetest.Eventually(t, 30*time.Second, "the campaign's batches acked", quiet)

			forced.Store(true)
			f.emitForced("cforce", ids)
			if tt.failures >= attempts {
				pipelinetest.Eventually(t, 30*time.Second, "the flaky devices' users dead-lettered", func() bool {
					return quiet() && len(f.dlq()) > 0
				})
				for _, d := range f.dlq() {
					fields, err := pipeline.DecodeDLQFields(d[pipeline.DLQFields])
					if err != nil || fields[pipeline.FieldForceDevices] == "" {
						t.Errorf("dead letter %v: no %s (%v)", fields, pipeline.FieldForceDevices, err)
					}
				}
				res, err := pipeline.NewDLQ(f.rdb, f.keys).Retry(f.ctx, pipeline.DLQFilter{Campaign: "cforce"})
				if err != nil || len(res.Failed) != 0 || len(res.Done) == 0 {
					t.Fatalf("dlq retry: %+v, %v", res, err)
				}
			}
			pipelinetest.Eventually(t, 30*time.Second, "the resend's rounds acked", func() bool {
				f.waitDrained()
				return quiet()
			})

			accepted := map[string]int{}
			for _, r := range fake.Receipts() {
				accepted[r.Token]++
			}
			for _, d := range devices {
				if accepted[d.token] != 2 {
					t.Errorf("device %s (flaky %v) accepted %d times, want 2: the send and the forced resend", d.token, flaky[d.token], accepted[d.token])
				}
			}
			if s := f.stats("cforce"); s[pipeline.StatSent] != int64(len(devices)) || s[pipeline.StatFailed] != 0 || s[pipeline.StatUsersDone] != users {
				t.Errorf("counters %v, want every device counted sent once", s)
			}
		})
	}
}
