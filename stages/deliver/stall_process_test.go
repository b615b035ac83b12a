package deliver

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// TestSIGSTOPPastClaimIdle stalls one of two deliver processes (SIGSTOP:
// as a long GC or VM pause looks from outside) for longer than its
// --claim-idle in the middle of a campaign, while the other claims its
// entries and finishes the campaign, then lets it go on (SIGCONT). The
// sends it had in flight at the stall are repeated by the claimer, which
// found them unmarked: at most its --in-flight. Once it runs again, its
// lease has run out: it starts nothing more until a keep tells it the
// batch is lost. (The old code went on sending until that keep: a round
// trip, against the round trip of the marks that free its slots, so its
// excess was a few sends at most, or none: measured, not asserted apart.)
func TestSIGSTOPPastClaimIdle(t *testing.T) {
	t.Parallel() // mostly waiting (50 ms a send, claim-idle); its bound is a count (--in-flight), on fakes and keys of its own
	// 4,000 users (4,571 devices, eight entries): d2 still claims
	// hundreds of d1's sends, which it would repeat with d1's marks
	// unread, far past inFlight.
	users := envInt(t, "PUSHPIPE_TEST_STOP_USERS", 4000)
	const inFlight, claimIdle = 64, 2 * time.Second
	f := newFixture(t)
	// Latency keeps requests in flight at the moment of the stall, and
	// the campaign long enough to be stopped in its middle.
	p := startProviders(t, fakeFlags{latency: 50 * time.Millisecond})
	devices := f.seedDevices(users, true)
	f.createCampaign("stall", `{}`)
	f.emitUsers("stall", userRange(users))
	flags := []string{"--claim-idle", claimIdle.String(), "--in-flight", strconv.Itoa(inFlight)}
	d1 := f.startDeliver(t, p, "d1", flags...)
	pipelinetest.Eventually(t, 60*time.Second, "a tenth of the campaign sent", func() bool {
		return f.stats("stall")[pipeline.StatSent] > int64(len(devices)/10)
	})
	if err := d1.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := f.stats("stall")[pipeline.StatSent]
	d2 := f.startDeliver(t, p, "d2", flags...)
	pipelinetest.Eventually(t, 60*time.Second, "d2 claimed every entry d1 held", func() bool {
		return f.pendingOf("d1") == 0
	})
	if err := d1.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	f.waitDone("stall", users, 120*time.Second)
	checkDelivered(t, f, "stall", devices, inFlight, p.apns, p.fcm)
	dups := p.apns.Summary().Duplicates + p.fcm.Summary().Duplicates
	t.Logf("stalled d1 with %d of %d devices sent; provider duplicates %d (bound --in-flight %d); d1 sent %v, d2 sent %v",
		stopped, len(devices), dups, inFlight, d1.sent(t), d2.sent(t))
	d1.signal(syscall.SIGTERM)
	d2.signal(syscall.SIGTERM)
}

// pendingOf is how many deliver entries consumer holds pending, over
// every partition.
func (f *fixture) pendingOf(consumer string) int64 {
	f.t.Helper()
	var n int64
	for _, stream := range f.keys.Streams(pipeline.StreamDeliver) {
		res, err := f.rdb.Do(f.ctx, f.rdb.B().Xpending().Key(stream).Group("deliver").Build()).ToArray()
		if err != nil || len(res) < 4 {
			continue // no group yet: nothing pending
		}
		consumers, _ := res[3].ToArray()
		for _, c := range consumers {
			pair, _ := c.ToArray()
			if len(pair) == 2 {
				if name, _ := pair[0].ToString(); name == consumer {
					count, _ := pair[1].AsInt64()
					n += count
				}
			}
		}
	}
	return n
}
