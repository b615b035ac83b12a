package deliver

import (
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// checkExactlyOnce asserts the delivery contract against the provider's
// receipts: every device is either accepted exactly once with the
// campaign's collapse id or was invalidated, never both, and the campaign's
// counters agree.
// receipts is what a test reads from a fake provider: in this process
// (*fakeprovider.Server) or in another one (remoteFake).
type receipts interface {
	Summary() fakeprovider.Summary
	Receipts() []fakeprovider.Receipt
}

func checkExactlyOnce(t *testing.T, f *fixture, campaign string, devices []testDevice, fakes ...receipts) {
	t.Helper()
	checkDelivered(t, f, campaign, devices, 0, fakes...)
}

// checkDelivered is checkExactlyOnce allowing up to maxDup repeated
// requests (those in flight in a process that was killed).
func checkDelivered(t *testing.T, f *fixture, campaign string, devices []testDevice, maxDup uint64, fakes ...receipts) {
	t.Helper()
	checkDeliveries(t, f, campaign, devices, maxDup, false, fakes...)
}

// checkDeliveries is checkDelivered that may allow refusals over the
// provider's TPS (retried, so still delivered once).
func checkDeliveries(t testing.TB, f *fixture, campaign string, devices []testDevice, maxDup uint64, overTPSOK bool, fakes ...receipts) {
	t.Helper()
	accepted := map[string]int{}
	var sum fakeprovider.Summary
	for _, fake := range fakes {
		s := fake.Summary()
		sum.Accepted += s.Accepted
		sum.Unique += s.Unique
		sum.Duplicates += s.Duplicates
		sum.RejectedOverTPS += s.RejectedOverTPS
		sum.Unregistered += s.Unregistered
		sum.BadToken += s.BadToken
		for _, r := range fake.Receipts() {
			accepted[r.Token]++
			if r.CollapseID != collapseID(campaign) {
				t.Fatalf("receipt for %s has collapse id %q, want %q", r.Token, r.CollapseID, campaign)
			}
		}
	}
	if sum.Duplicates > maxDup {
		t.Errorf("provider saw %d duplicates, at most %d allowed", sum.Duplicates, maxDup)
	}
	if sum.RejectedOverTPS != 0 && !overTPSOK {
		t.Errorf("provider rejected %d requests over its TPS", sum.RejectedOverTPS)
	}
	invalid := f.invalidations()
	for _, d := range devices {
		_, inv := invalid[d.token]
		switch n := accepted[d.token]; {
		case n > 1 && maxDup == 0:
			t.Errorf("device %s accepted %d times", d.token, n)
		case n == 1 && inv:
			t.Errorf("device %s accepted and invalidated", d.token)
		case n == 0 && !inv:
			t.Errorf("device %s neither accepted nor invalidated", d.token)
		}
	}
	// A token refused as invalid twice (repeated after a crash) has one
	// invalidation.
	if got, want := uint64(len(invalid)), sum.Unregistered+sum.BadToken; got > want || got+maxDup < want {
		t.Errorf("%d invalidation events, provider refused %d requests as invalid tokens", got, want)
	}
	s := f.stats(campaign)
	if s[pipeline.StatSent] != int64(sum.Unique) || s[pipeline.StatInvalid] != int64(len(invalid)) || s[pipeline.StatFailed] != 0 {
		t.Errorf("counters %v; provider accepted %d, %d invalidated", s, sum.Accepted, len(invalid))
	}
	if s[pipeline.StatFirstMs] == 0 || s[pipeline.StatLastMs] < s[pipeline.StatFirstMs] {
		t.Errorf("first/last send times %d/%d", s[pipeline.StatFirstMs], s[pipeline.StatLastMs])
	}
	// The last target was done after the last send was marked (Redis's
	// clock and this process's are the machine's), and not in the future.
	if done := s[pipeline.StatDoneMs]; done < s[pipeline.StatLastMs]-1000 || done > time.Now().UnixMilli()+1000 {
		t.Errorf("last target done at %d, last send %d, now %d", done, s[pipeline.StatLastMs], time.Now().UnixMilli())
	}
	if n := f.retriesLeft(); n != 0 {
		t.Errorf("%d retries left", n)
	}
	if n := f.pendingEntries(); n != 0 {
		t.Errorf("%d deliver entries still pending", n)
	}
	t.Logf("accepted %d (%d duplicates), invalid %d, counters %v", sum.Accepted, sum.Duplicates, len(invalid), s)
}

// TestDeliverOnceDespiteErrorsAndDeadTokens: random 5xx are retried until
// accepted, dead tokens become invalidations, and nobody gets a second copy.
func TestDeliverOnceDespiteErrorsAndDeadTokens(t *testing.T) {
	f := newFixture(t)
	// The fake runs in this process, under the race detector: a provider
	// that stalls whenever the stage does. It gets room above deliver's
	// cap; keeping a provider's cap exactly is TestThreeProcessesKeepTheProviderCap's.
	fake := fakeprovider.Start(t, fakeprovider.Options{TPS: 2500, UnregisteredRate: 0.01, BadTokenRate: 0.005, ErrorRate: 0.03})
	// A thousand users (1,142 devices) bring some 30 5xx to retry, a dozen
	// 410s and a few 400s: each fate many times over, at a third of the
	// race detector's time of 3,000.
	const users = 1000
	devices := f.seedDevices(users, false)
	f.createCampaign("c1", `{"deep_link":"app://promo","n":3}`)
	f.emitUsers("c1", userRange(users))

	f.startStage(Config{
		Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake)},
		TPS:     2000, RetryBase: 20 * time.Millisecond,
	}, "d1", 30*time.Second)
	f.waitDone("c1", users, 60*time.Second)
	checkExactlyOnce(t, f, "c1", devices, fake)
	if fake.Summary().Errors == 0 {
		t.Error("the provider answered no 5xx: retries were not exercised")
	}
}

// TestDeliverOnCluster runs the stage against a 3-master Redis Cluster: every
// script and pipelined call must stay within one hash tag (CROSSSLOT
// otherwise), including retries, invalidations, marks and the rate limit;
// every entry has copies beside it, from two replays.
func TestDeliverOnCluster(t *testing.T) {
	cluster := pipelinetest.SharedClusterT(t) // keys of its own prefix (newFixtureOn)
	f := newFixtureOn(t, strings.Join(cluster.Addrs, ","))
	// Room above deliver's cap, as in TestDeliverOnceDespiteErrorsAndDeadTokens.
	fake := fakeprovider.Start(t, fakeprovider.Options{TPS: 1250, UnregisteredRate: 0.02, ErrorRate: 0.05})
	const users = 1000 // some 50 5xx and 20 410s, as in TestDeliverOnceDespiteErrorsAndDeadTokens
	// Ids spread over every partition (ids 1..1023 share one).
	var ids []int64
	var devices []testDevice
	for i := int64(0); i < users; i++ {
		u := 1 + i*331
		ids = append(ids, u)
		devices = append(devices, testDevice{u, push.IOS, iosToken(u, 0)})
	}
	f.insertDevices(devices)
	f.createCampaign("ccl", `{}`)
	f.emitUsers("ccl", ids)
	f.replayTwice(false) // copies read in one batch are sent once there too (repeats.go)
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake)},
		TPS: 1000, RetryBase: 20 * time.Millisecond}, "d1", 30*time.Second)
	f.waitDone("ccl", users, 60*time.Second)
	checkExactlyOnce(t, f, "ccl", devices, fake)
}
