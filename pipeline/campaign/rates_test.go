package campaign

import (
	"testing"
	"time"
)

// TestExpectedFinish: the expected finish is the targets left at the rate
// targets were done so far. While a campaign is still being cut (a capped
// one is cut about a minute of sends ahead of them), the targets found are
// those of the ranges cut, nearly all done at any moment: counted against
// them, a campaign hours from its end read as a minute away. Its audience,
// when split counted it, is what is left of it.
func TestExpectedFinish(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	first := now.Add(-100 * time.Second).UnixMilli() // 100 s of sending, 1 target done a second
	tests := []struct {
		name string
		give Report
		want time.Duration // from now; 0: none
	}{
		{"running", Report{State: StateRunning, Counts: Counts{Targets: 300}, Done: 100}, 200 * time.Second},
		{"splitting, audience counted", Report{State: StateSplitting, Counts: Counts{Targets: 150}, Audience: 1000, Done: 100}, 900 * time.Second},
		// Without a count, the targets found so far are all it knows.
		// Muted people and repeats across its channels are subscriptions
		// the audience counts: reached as their ranges are read.
		{"splitting, muted and repeats reached", Report{State: StateSplitting, Counts: Counts{Targets: 150, Muted: 50, DuplicatesSuppressed: 100}, Audience: 1000, Done: 100}, 300 * time.Second},
		{"splitting, no audience", Report{State: StateSplitting, Counts: Counts{Targets: 150}, Done: 100}, 50 * time.Second},
		// An audience below the targets found (users muted since the count
		// do not lower it; new subscribers raise the targets): the targets.
		{"audience below the targets", Report{State: StateSplitting, Counts: Counts{Targets: 300}, Audience: 200, Done: 100}, 200 * time.Second},
		{"done", Report{State: StateDone, Counts: Counts{Targets: 300}, Audience: 1000, Done: 300}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.give
			r.Sent, r.FirstSendMs, r.LastSendMs = r.Done, first, now.UnixMilli()
			r.rates(now)
			var got time.Duration
			if r.ExpectedFinishMs > 0 {
				got = time.UnixMilli(r.ExpectedFinishMs).Sub(now)
			}
			if got != tt.want {
				t.Errorf("expected finish in %v, want %v", got, tt.want)
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
