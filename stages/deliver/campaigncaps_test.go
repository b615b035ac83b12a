package deliver

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// TestCampaignCapsAreLetGo: a deliver keeps the limiter of a campaign's
// own cap while the campaign sends, and lets go of it once it has not for
// campaignIdle. Before, it kept one limiter per distinct rate for its
// life, with a bucket for every campaign ever paced at it: here 151 (100
// campaigns at as many rates, one campaign's rate changed 50 times, and
// the one in flight) where it now holds the one in flight. That one keeps
// its pacing throughout: its sends over the run are its cap's, no more,
// and not stalled. The process's idle is a second here, not campaignIdle:
// the sweep is the same, 13 s sooner.
func TestCampaignCapsAreLetGo(t *testing.T) {
	f := newFixture(t)
	lc := newLifecycle(f.rdb, f.db, f.keys, zerolog.Nop(), prometheus.NewCounter(prometheus.CounterOpts{Name: "late"}))
	cr := &lc.rates
	cr.idle = time.Second
	for i := range 100 {
		if err := cr.wait(f.ctx, &campaign{ID: fmt.Sprintf("c%d", i)}, 1000+i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		if err := cr.wait(f.ctx, &campaign{ID: "changed"}, 2000+i); err != nil {
			t.Fatal(err)
		}
	}
	const rate = 40
	inFlight := &campaign{ID: "in-flight"}
	run := cr.idle*3/2 + time.Second // past the sweep of the others
	start, sends := time.Now(), 0
	for time.Since(start) < run {
		if err := cr.wait(f.ctx, inFlight, rate); err != nil {
			t.Fatal(err)
		}
		sends++
	}
	secs := time.Since(start).Seconds()
	if n := cr.held(); n != 1 {
		t.Errorf("after %.1fs, the process holds %d campaign caps, want 1: the campaign in flight", secs, n)
	}
	// The limiter's slots are a little over 1/rate apart (its allowance);
	// its ahead grants a few at once: the most is the cap's, on any
	// machine (a starved one only sends fewer). The least is a stall's
	// guard, not a speed: a loaded box that starves this goroutine gets
	// fewer slots (the limiter drops the permits it finds late, and grants
	// none for the time nobody asked), so an eighth of the cap, not half.
	if most, least := int(secs*rate*11/10)+5, int(secs*rate/8); sends > most || sends < least {
		t.Errorf("in flight at %d/s: %d sends in %.1fs, want %d to %d", rate, sends, secs, least, most)
	} else {
		t.Logf("in flight at %d/s: %d sends in %.1fs", rate, sends, secs)
	}
}
