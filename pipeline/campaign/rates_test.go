package campaign

import (
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
)

// TestExpectedFinish: the expected finish is the targets left at the rate
// targets were done so far. While a campaign is still being cut (a capped
// one is cut about a minute of sends ahead of them), the targets found are
// those of the ranges cut, nearly all done at any moment: counted against
// them, a campaign hours from its end read as a minute away. Its audience,
// when split counted it, is what is left of it.
func TestExpectedFinish(t *testing.T) {
	now := time.UnixMilli(1_000_000_000)
	first := now.Add(-100 * time.Second).UnixMilli() // 100 s of sending, 1 target done a second
	tests := []struct {
		name string
		give Report
		idle time.Duration // since the last target done and the last send
		want time.Duration // from now; 0: none
		// wantStalled is how long ago the campaign stalled; 0: it did not.
		wantStalled time.Duration
		// moves is what the pipeline does meanwhile (motion.moves), and
		// wantQueued how long ago the campaign was queued; 0: it was not.
		moves      bool
		wantQueued time.Duration
	}{
		{"running", Report{State: StateRunning, Counts: Counts{Targets: 300}, Done: 100}, 0, 200 * time.Second, 0, false, 0},
		{"splitting, audience counted", Report{State: StateSplitting, Counts: Counts{Targets: 150}, Audience: 1000, Done: 100}, 0, 900 * time.Second, 0, false, 0},
		// Without a count, the targets found so far are all it knows.
		// Muted people and repeats across its channels are subscriptions
		// the audience counts: reached as their ranges are read.
		{"splitting, muted and repeats reached", Report{State: StateSplitting, Counts: Counts{Targets: 150, Muted: 50, DuplicatesSuppressed: 100}, Audience: 1000, Done: 100}, 0, 300 * time.Second, 0, false, 0},
		{"splitting, no audience", Report{State: StateSplitting, Counts: Counts{Targets: 150}, Done: 100}, 0, 50 * time.Second, 0, false, 0},
		// An audience below the targets found (users muted since the count
		// do not lower it; new subscribers raise the targets): the targets.
		{"audience below the targets", Report{State: StateSplitting, Counts: Counts{Targets: 300}, Audience: 200, Done: 100}, 0, 200 * time.Second, 0, false, 0},
		{"done", Report{State: StateDone, Counts: Counts{Targets: 300}, Audience: 1000, Done: 300}, 0, 0, 0, false, 0},
		// Deliver counts targets done about every second while a campaign
		// moves: a few seconds without is a pause, and the finish counts
		// from now.
		{"paused", Report{State: StateRunning, Counts: Counts{Targets: 400}, Done: 100}, 5 * time.Second, 300 * time.Second, 0, false, 0},
		// Nothing done for as long as status takes to call deliver not
		// running: no finish to promise (it read "~3m20s" for as long as
		// deliver was down), but since when it stalled.
		{"stalled", Report{State: StateRunning, Counts: Counts{Targets: 300}, Done: 100}, pipeline.DownAfter, 0, pipeline.DownAfter, false, 0},
		{"stalled while cut", Report{State: StateSplitting, Counts: Counts{Targets: 150}, Audience: 1000, Done: 100}, time.Hour, 0, time.Hour, false, 0},
		// As long without progress while the pipeline moves other work
		// (another campaign's entries ahead of it): queued, not stalled,
		// and no finish either, its turn being the work ahead of it.
		{"queued", Report{State: StateRunning, Counts: Counts{Targets: 300}, Done: 100}, pipeline.DownAfter, 0, 0, true, pipeline.DownAfter},
		// Deliver's recent pace, where it keeps one, over the average: a
		// slow start (1 a second on average, 4 lately) no longer makes it
		// late, nor a provider slowing down (1/4 lately) early.
		{"at the recent pace", Report{State: StateRunning, Counts: Counts{Targets: 300}, Done: 100, Pace: 4}, 0, 50 * time.Second, 0, false, 0},
		{"slowed down", Report{State: StateRunning, Counts: Counts{Targets: 300}, Done: 100, Pace: 0.25}, 0, 800 * time.Second, 0, false, 0},
		// Muted people and repeats come with the targets, in the proportion
		// so far: 2 targets a second reach 5 subscriptions.
		{"recent pace while cut", Report{State: StateSplitting, Counts: Counts{Targets: 150, Muted: 50, DuplicatesSuppressed: 100}, Audience: 1000, Done: 100, Pace: 2}, 0, 150 * time.Second, 0, false, 0},
		{"stalled with a pace", Report{State: StateRunning, Counts: Counts{Targets: 300}, Done: 100, Pace: 4}, pipeline.DownAfter, 0, pipeline.DownAfter, false, 0},
		// Moving or paused, the pipeline is not asked.
		{"moving while others move", Report{State: StateRunning, Counts: Counts{Targets: 300}, Done: 100}, 0, 200 * time.Second, 0, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.give
			last := now.Add(-tt.idle).UnixMilli()
			r.Sent, r.FirstSendMs, r.LastSendMs, r.DoneMs = r.Done, first-tt.idle.Milliseconds(), last, last
			asked := false
			r.rates(now, pipeline.DownAfter, func() bool { asked = true; return tt.moves })
			if idle := tt.idle >= pipeline.DownAfter; asked != idle {
				t.Errorf("asked whether the pipeline moves: %v; want %v (only of a campaign idle for DownAfter)", asked, idle)
			}
			var got, stalled, queued time.Duration
			if r.ExpectedFinishMs > 0 {
				got = time.UnixMilli(r.ExpectedFinishMs).Sub(now)
			}
			if r.StalledSinceMs > 0 {
				stalled = now.Sub(time.UnixMilli(r.StalledSinceMs))
			}
			if r.QueuedSinceMs > 0 {
				queued = now.Sub(time.UnixMilli(r.QueuedSinceMs))
			}
			if got != tt.want || stalled != tt.wantStalled || queued != tt.wantQueued {
				t.Errorf("expected finish in %v, stalled %v ago, queued %v ago; want %v, %v ago, %v ago", got, stalled, queued, tt.want, tt.wantStalled, tt.wantQueued)
			}
		})
	}
}

// TestPastExpiry: a campaign whose expected finish is after its expiry
// says so while it runs; one that ends before it, or is over, does not.
func TestPastExpiry(t *testing.T) {
	expires := time.UnixMilli(2_000_000)
	tests := []struct {
		name string
		give Report
		want bool
	}{
		{"finishes after it expires", Report{State: StateRunning, ExpectedFinishMs: 2_000_001}, true},
		{"still being cut", Report{State: StateSplitting, ExpectedFinishMs: 3_000_000}, true},
		{"finishes before", Report{State: StateRunning, ExpectedFinishMs: 1_999_999}, false},
		{"no finish known yet", Report{State: StateRunning}, false},
		{"over", Report{State: StateCanceled, ExpectedFinishMs: 3_000_000}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.give
			r.ExpiresAt = expires
			if got := r.PastExpiry(); got != tt.want {
				t.Errorf("PastExpiry = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSendRate: the sends per second between the first and the last send
// count the devices that went to the provider, sent or failed, not those
// failed unsent: a capped campaign (20/s) whose 873 expired devices were
// failed at its expiry read 195 a second.
func TestSendRate(t *testing.T) {
	tests := []struct {
		name string
		give Counts
		want float64
	}{
		{"sent", Counts{Sent: 100}, 20},
		{"sent and failed at the provider", Counts{Sent: 90, Failed: 10}, 20},
		{"expired after 97 sends", Counts{Sent: 97, Failed: 873, Unsent: 873}, 19.4},
		{"a provider failure among the expired", Counts{Sent: 97, Failed: 874, Unsent: 873}, 19.6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Report{State: StateDone, Counts: tt.give}
			r.FirstSendMs, r.LastSendMs = 1_000_000, 1_005_000
			r.rates(time.UnixMilli(1_010_000), pipeline.DownAfter, func() bool { return false })
			if r.SendRate != tt.want {
				t.Errorf("SendRate = %v, want %v", r.SendRate, tt.want)
			}
		})
	}
}
