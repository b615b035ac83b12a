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
// skipped: the devices were marked by the first send). A message's raw
// tokens too.
func TestForcedRoundRetriesOnlyWhatFailed(t *testing.T) {
	const attempts = 3
	tests := []struct {
		name     string
		failures int  // answers of 503 each flaky device gets in the forced round
		raw      bool // a message's raw tokens rather than users' devices
	}{
		{"retried", 1, false},
		{"dead-lettered, then dlq retry", attempts, false},
		{"raw tokens retried", 1, true},
		{"raw tokens dead-lettered, then dlq retry", attempts, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Side by side (go test -parallel, 2 on CI), each on a fixture
			// and fake of its own: mostly waiting on reads, retries and
			// the quiet second below; nothing in it is timed.
			t.Parallel()
			f := newFixture(t)
			const users = 40
			var (
				ids     []int64
				devices []testDevice
				flaky   = map[string]bool{}
				tokens  = rawTokens(2 * users)
			)
			for u := int64(1); u <= users; u++ {
				ids = append(ids, u)
				devices = append(devices, testDevice{u, push.IOS, iosToken(u, 0)}, testDevice{u, push.IOS, iosToken(u, 1)})
				if u%2 == 0 {
					flaky[iosToken(u, 1)] = true
				}
			}
			emit := func(force bool) {
				if !force {
					f.emitUsers("cforce", ids)
				} else {
					f.emitForced("cforce", ids)
				}
			}
			targets := users
			if tt.raw {
				devices, flaky, targets = nil, map[string]bool{}, len(tokens)
				for _, tok := range tokens {
					devices = append(devices, testDevice{tok.ID, push.Platform(tok.Platform), tok.Token})
					if tok.ID%4 == 0 { // one in two of each platform
						flaky[tok.Token] = true
					}
				}
				emit = func(force bool) { f.emitTokens("cforce", tokens, force) }
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
			if !tt.raw {
				f.insertDevices(devices)
			}
			f.createCampaign("cforce", `{}`)
			emit(false)
			f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake), push.Android: fcmSender(t, fake)},
				MaxAttempts: attempts, RetryBase: 10 * time.Millisecond}, "d1", 30*time.Second)
			f.waitDone("cforce", targets, 30*time.Second)
			// quiet: nothing read and not acked, nothing added and not read,
			// no retry waiting.
			quiet := func() bool {
				groups, err := pipeline.StreamGroups(f.ctx, f.rdb, f.keys.Streams(pipeline.StreamDeliver))
				if err != nil {
					t.Fatal(err)
				}
				for _, gs := range groups {
					for _, g := range gs {
						if g.Pending != 0 || g.Lag != 0 {
							return false
						}
					}
				}
				return f.retriesLeft() == 0
			}
			pipelinetest.Eventually(t, 30*time.Second, "the campaign's batches acked", quiet)

			forced.Store(true)
			emit(true)
			if tt.failures >= attempts {
				pipelinetest.Eventually(t, 30*time.Second, "the flaky devices' users dead-lettered", func() bool {
					return quiet() && deadTargets(t, f.dlq()) == len(flaky)
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
			accepted := map[string]int{}
			pipelinetest.Eventually(t, 30*time.Second, "every device resent", func() bool {
				clear(accepted)
				for _, r := range fake.Receipts() {
					accepted[r.Token]++
				}
				for _, d := range devices {
					if accepted[d.token] < 2 {
						return false
					}
				}
				return true
			})
			// Then what more would come: the retries of the resend's
			// rounds (the stream's lag alone can miss an entry just added).
			pipelinetest.Eventually(t, 30*time.Second, "the resend's rounds acked", quiet)
			time.Sleep(time.Second)
			pipelinetest.Eventually(t, 30*time.Second, "the resend's rounds acked", quiet)
			clear(accepted)
			for _, r := range fake.Receipts() {
				accepted[r.Token]++
			}
			for _, d := range devices {
				if accepted[d.token] != 2 {
					t.Errorf("device %s (flaky %v) accepted %d times, want 2: the send and the forced resend", d.token, flaky[d.token], accepted[d.token])
				}
			}
			if s := f.stats("cforce"); s[pipeline.StatSent] != int64(len(devices)) || s[pipeline.StatFailed] != 0 || s[pipeline.StatUsersDone] != int64(targets) {
				t.Errorf("counters %v, want every device counted sent once", s)
			}
		})
	}
}

// deadTargets counts the users and raw tokens of dead letters.
func deadTargets(t *testing.T, letters []map[string]string) int {
	t.Helper()
	n := 0
	for _, d := range letters {
		fields, err := pipeline.DecodeDLQFields(d[pipeline.DLQFields])
		if err != nil {
			t.Fatal(err)
		}
		e, err := pipeline.ParseDeliverEntry(fields)
		if err != nil {
			t.Fatal(err)
		}
		n += len(e.Users) + len(e.Tokens)
	}
	return n
}
