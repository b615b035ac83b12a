package deliver

import (
	"sync"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// arrivals records when a fake provider got each request, by token.
type arrivals struct {
	mu sync.Mutex
	at map[string][]time.Time
}

func (a *arrivals) add(token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.at == nil {
		a.at = map[string][]time.Time{}
	}
	a.at[token] = append(a.at[token], time.Now())
}

// after counts the requests that came after t.
func (a *arrivals) after(t time.Time) (late int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ts := range a.at {
		for _, at := range ts {
			if at.After(t) {
				late++
			}
		}
	}
	return late
}

// count is how many requests token got.
func (a *arrivals) count(token string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at[token])
}

// TestCutOffDeliverStartsNoSendPastItsLease: a deliver cut off from Redis
// (a proxy that stops forwarding, both ways: a network partition) while
// it works through a batch loses the batch to another consumer's claim
// after --claim-idle, and cannot learn it: its keeps get no answer. Its
// sends that need no Redis went on: a direct message's (a campaign's send
// waits for a cancel flag read within the last second) that the provider
// answers with a transient error (503), which writes no mark, so holds no
// in-flight slot while Redis is away (a send answered Sent waits for its mark, and
// holds its slot meanwhile: at most --in-flight of those start). It
// requested every device of its batch, at the provider's pace, for as long
// as the batch took, while the other consumer sent them too (158 requests
// past the lease on the old code). Now it starts nothing once its lease
// ran out: past it, at most the sends in flight then (--in-flight). The
// other consumer sends every device once.
func TestCutOffDeliverStartsNoSendPastItsLease(t *testing.T) {
	f := newFixture(t)
	proxy := pipelinetest.ProxyT(t, env.Redis.Addr, 0)
	cutRdb, err := pipeline.NewRedis(proxy.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cutRdb.Close)
	cut := *f
	cut.rdb = cutRdb

	const (
		users     = 300
		inFlight  = 4
		claimIdle = 2 * time.Second
		latency   = 50 * time.Millisecond // 4 in flight: 80 requests a second, the batch's 343 devices take 4 s
	)
	devices := f.seedDevices(users, false)
	f.createCampaign("clease", `{}`)
	// A direct message: a campaign's sends stop by themselves within a
	// second of Redis going away (their cancel flag must be read fresh:
	// campaign.Cancels), a message's are not watched for a cancel.
	if _, err := f.db.Exec(f.ctx, `UPDATE campaigns SET kind = 'message' WHERE id = 'clease'`); err != nil {
		t.Fatal(err)
	}
	f.emitEvery("clease", userRange(users), users) // one entry, one batch

	var failing, accepting arrivals
	fake1 := fakeprovider.Start(t, fakeprovider.Options{Latency: latency, ForceStatus: func(token string) (int, string) {
		failing.add(token)
		return 503, "ServiceUnavailable"
	}})
	fake2 := fakeprovider.Start(t, fakeprovider.Options{ForceStatus: func(token string) (int, string) {
		accepting.add(token)
		return 0, ""
	}})
	opts := func(consumer string) pipeline.Options {
		return pipeline.Options{Stage: "deliver", Stream: pipeline.StreamDeliver, Consumer: consumer,
			Concurrency: 2, BatchSize: 4, Block: 100 * time.Millisecond, ClaimIdle: claimIdle, ShutdownTimeout: 5 * time.Second}
	}
	d1 := cut.startStageWith(Config{Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake1)}, InFlight: inFlight}, opts("d1"))
	pipelinetest.Eventually(t, 30*time.Second, "d1 sending", func() bool { return failing.after(time.Time{}) >= 10 })
	proxy.Hold()
	held := time.Now()
	// The last keep that reached Redis was sent before held: the lease ran
	// out before held + ClaimIdle; a send started before then reaches the
	// provider within latency (and a loaded machine's delays).
	expired := held.Add(claimIdle + latency + 500*time.Millisecond)

	f.startStageWith(Config{Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake2)}, InFlight: inFlight}, opts("d2"))
	f.waitDone("clease", users, 60*time.Second)
	if now := time.Now(); now.Before(expired.Add(time.Second)) {
		time.Sleep(expired.Add(time.Second).Sub(now)) // d1 had time to go on
	}
	if late := failing.after(expired); late > inFlight {
		t.Errorf("the cut-off deliver made %d requests after its lease ran out, want at most --in-flight %d (it made %d before)",
			late, inFlight, failing.after(time.Time{})-late)
	}
	t.Logf("d1: %d requests, %d after held+1s, %d after expiry", failing.after(time.Time{}), failing.after(held.Add(time.Second)), failing.after(expired))
	proxy.Release() // d1 learns the batch is lost, and stops
	d1.stop()
	for _, d := range devices {
		if n := accepting.count(d.token); n != 1 {
			t.Errorf("device %s sent %d times by the claimer, want 1", d.token, n)
		}
	}
}
