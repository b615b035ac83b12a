package deliver

import (
	"testing"
	"time"

	campaignrow "github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// A provider that slows down in the middle of a campaign moves its expected
// finish later, end to end: deliver's readings of the users done, the
// campaign's report and its recent pace, over real sends to the fake
// provider. Once it answers each request after 500 ms, 2 requests in flight
// send at most 4 a second: the finish must be at least the users left at
// twice that pace away (room for readings taken a second apart). The
// average since the start (a fifth of the users at full speed, then 4 a
// second) stays above that for minutes, so it never promises as late.
// (TestExpectedFinish has the arithmetic.)
func TestExpectedFinishFollowsAProviderSlowingDown(t *testing.T) {
	t.Parallel() // mostly waiting (2 in flight at 500 ms, the pace's readings), on a fixture and fake of its own
	const (
		users    = 4000
		inFlight = 2
		slow     = 500 * time.Millisecond
		maxPace  = 2 * float64(inFlight) / 0.5 // users a second (a user has one device or two)
	)
	f := newFixture(t)
	f.seedDevices(users, false)
	f.createCampaign("c1", `{}`)
	f.upstreamDone("c1", users)
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake)},
		InFlight: inFlight, ExpressInFlight: 1, donePaceEvery: time.Second}, "d1", 0)
	f.emitEvery("c1", userRange(users), 20)

	report := func() campaignrow.Report {
		t.Helper()
		r, err := campaignrow.Progress(f.ctx, f.rdb, f.db, f.keys, "c1")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	pipelinetest.Eventually(t, 60*time.Second, "a fifth of the users done at full speed", func() bool {
		return report().Done >= users/5
	})
	fake.SetLatency(slow)
	pipelinetest.Eventually(t, 60*time.Second, "the expected finish at the slow pace", func() bool {
		r := report()
		if r.ExpectedFinishMs == 0 || r.Done >= users {
			return false
		}
		left := time.Until(time.UnixMilli(r.ExpectedFinishMs))
		t.Logf("%d of %d done at %.1f a second lately: finish in %v", r.Done, users, r.Pace, left.Round(time.Second))
		return left >= time.Duration(float64(users-r.Done)/maxPace*float64(time.Second))
	})
}
