package deliver

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// TestForcedRoundRedeliveredSendsOnce: a campaign went out, an operator's
// `replay --force` resends it, and the process is stopped in the middle of
// the forced round: the sends it made are marked, its entries stay pending.
// Redelivered, the entries send to the devices the forced round did not
// reach yet, not again to the ones it did (the marks, set before the
// replay, could not tell them apart: every device got a third copy). The
// stop is graceful, so no send is in flight at it: each device is accepted
// exactly twice. On a 3-master cluster too, where the record of what the
// forced round sent shares the marks' call and slot.
func TestForcedRoundRedeliveredSendsOnce(t *testing.T) {
	tests := []struct {
		name    string
		cluster bool
		raw     bool // a message's raw tokens rather than users' devices
	}{
		{"users", false, false},
		{"raw tokens", false, true},
		{"users on a cluster", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Side by side (go test -parallel, 2 on CI): mostly waiting on
			// a forced round at 10 sends a second, each on a fixture and
			// fake of its own; the stop at a quarter is a count, not a time.
			t.Parallel()
			var f *fixture
			if tt.cluster {
				f = newFixtureOn(t, strings.Join(pipelinetest.SharedClusterT(t).Addrs, ","))
			} else {
				f = newFixture(t)
			}
			fake := fakeprovider.Start(t, fakeprovider.Options{})
			const users = 40
			var (
				ids     []int64
				devices []testDevice
				tokens  = rawTokens(2 * users)
			)
			for i := range int64(users) {
				u := 1 + i*331 // over every partition (ids 1..1023 share one)
				ids = append(ids, u)
				devices = append(devices, testDevice{u, push.IOS, iosToken(u, 0)}, testDevice{u, push.IOS, iosToken(u, 1)})
			}
			emit := func(force bool) {
				if force {
					f.emitForced("credo", ids)
				} else {
					f.emitUsers("credo", ids)
				}
			}
			targets := users
			if tt.raw {
				devices, targets = nil, len(tokens)
				for _, tok := range tokens {
					devices = append(devices, testDevice{tok.ID, push.Platform(tok.Platform), tok.Token})
				}
				emit = func(force bool) { f.emitTokens("credo", tokens, force) }
			} else {
				f.insertDevices(devices)
			}
			f.createCampaign("credo", `{}`)
			senders := map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake), push.Android: fcmSender(t, fake)}
			// One consumer throughout: a process started again takes its
			// own pending entries at once. Time enough to finish what is in
			// flight at a stop, however loaded the machine.
			start := func(tps int) *stage {
				return f.startStageWith(Config{Senders: senders, TPS: tps, RetryBase: 10 * time.Millisecond}, pipeline.Options{
					Stage: "deliver", Stream: pipeline.StreamDeliver, Consumer: "d1",
					Concurrency: 4, BatchSize: 4, Block: 200 * time.Millisecond, ClaimIdle: 30 * time.Second,
					ShutdownTimeout: time.Minute,
				})
			}
			accepted := func() map[string]int {
				n := map[string]int{}
				for _, r := range fake.Receipts() {
					n[r.Token]++
				}
				return n
			}

			s := start(0)
			emit(false)
			f.waitDone("credo", targets, 60*time.Second)
			f.waitDrained()
			s.stop()
			if n := len(fake.Receipts()); n != len(devices) {
				t.Fatalf("%d sends before the replay, want %d", n, len(devices))
			}

			// The forced round, slow enough under its cap to be stopped
			// a quarter of the way.
			emit(true)
			s = start(10)
			pipelinetest.Eventually(t, 60*time.Second, "a quarter of the forced round sent", func() bool {
				return len(fake.Receipts()) >= len(devices)+len(devices)/4
			})
			s.stop()
			if f.pendingEntries() == 0 {
				t.Fatal("every forced entry was acked before the stop: nothing is redelivered")
			}
			before := accepted()
			resent := 0
			for _, d := range devices {
				if before[d.token] > 2 {
					t.Fatalf("device %s accepted %d times before the redelivery", d.token, before[d.token])
				}
				resent += before[d.token] - 1
			}

			start(0) // stopped when the test ends
			f.waitResent(t, devices, accepted)
			after := accepted()
			for _, d := range devices {
				if after[d.token] != 2 {
					t.Errorf("device %s accepted %d times (%d before the redelivery), want 2: the send and the forced resend",
						d.token, after[d.token], before[d.token])
				}
			}
			t.Logf("%d of %d devices resent before the stop", resent, len(devices))
			if st := f.stats("credo"); st[pipeline.StatSent] != int64(len(devices)) || st[pipeline.StatUsersDone] != int64(targets) {
				t.Errorf("counters %v, want every device counted sent once", st)
			}
		})
	}
}

// TestForcedRoundSIGKILLRepeatsInFlightOnly is TestForcedRoundRedeliveredSendsOnce
// with a real deliver process SIGKILLed in the middle of the forced round,
// its requests held at the provider: the process that takes over repeats
// at most the killed one's --in-flight requests, as for any entry (it
// repeated every device the forced round had reached).
func TestForcedRoundSIGKILLRepeatsInFlightOnly(t *testing.T) {
	t.Parallel() // mostly waiting (20 ms a send, claim-idle); its bound is a count (--in-flight), on fakes and keys of its own
	const users, inFlight = 120, 4
	f := newFixture(t)
	// Latency keeps requests in flight at the moment of the kill.
	p := startProviders(t, fakeFlags{latency: 20 * time.Millisecond})
	devices := f.seedDevices(users, true)
	f.createCampaign("fkill", `{}`)
	accepted := func() map[string]int {
		n := map[string]int{}
		for _, fake := range []*remoteFake{p.apns, p.fcm} {
			for _, r := range fake.Receipts() {
				n[r.Token]++
			}
		}
		return n
	}
	total := func() int {
		n := 0
		for _, c := range accepted() {
			n += c
		}
		return n
	}
	// One consumer name throughout: a process started again takes its own
	// pending entries at once.
	d := f.startDeliver(t, p, "d1")
	f.emitUsers("fkill", userRange(users))
	f.waitDone("fkill", users, 60*time.Second)
	f.waitDrained()
	d.signal(syscall.SIGTERM)

	// The forced round, slow enough under its cap to be killed a quarter
	// of the way.
	f.emitForced("fkill", userRange(users))
	d = f.startDeliver(t, p, "d1", "--tps", "40", "--in-flight", strconv.Itoa(inFlight))
	pipelinetest.Eventually(t, 60*time.Second, "a quarter of the forced round sent", func() bool {
		return total() >= len(devices)+len(devices)/4
	})
	d.signal(syscall.SIGKILL)
	if f.pendingEntries() == 0 {
		t.Fatal("every forced entry was acked before the kill: nothing is redelivered")
	}
	before := total() - len(devices)

	d = f.startDeliver(t, p, "d1")
	f.waitResent(t, devices, accepted)
	repeats := 0
	for tok, n := range accepted() {
		if n > 3 {
			t.Errorf("device %s accepted %d times", tok, n)
		}
		repeats += max(n-2, 0)
	}
	if repeats > inFlight {
		t.Errorf("%d devices accepted a third time, want at most the killed process's %d in flight", repeats, inFlight)
	}
	t.Logf("%d of %d devices resent before the kill; %d repeated after it", before, len(devices), repeats)
	d.signal(syscall.SIGTERM)
}

// waitResent waits for the redelivery of a forced round to end: every
// device accepted twice at least (by accepted, the provider's counts by
// token), nothing pending or waiting to be retried, and again so a second
// later (whatever more would come: a retry just added).
func (f *fixture) waitResent(t *testing.T, devices []testDevice, accepted func() map[string]int) {
	t.Helper()
	quiet := func() bool { return f.pendingEntries() == 0 && f.retriesLeft() == 0 }
	pipelinetest.Eventually(t, 60*time.Second, "every device resent", func() bool {
		n := accepted()
		for _, d := range devices {
			if n[d.token] < 2 {
				return false
			}
		}
		return quiet()
	})
	time.Sleep(time.Second)
	pipelinetest.Eventually(t, 60*time.Second, "the redelivered entries acked", quiet)
}
