package fakeprovider

import (
	"testing"
	"time"
)

// arrival is one request of a window test: when it comes (ms after a base
// that is not a whole Unix second) and what the window must answer.
type arrival struct {
	atMs       int
	ok         bool
	retryAfter time.Duration // when refused
}

func TestRateGateWindows(t *testing.T) {
	tests := []struct {
		name   string
		window Window
		tps    int
		give   []arrival
	}{
		{
			name: "sliding: a full window refuses until its oldest is a second old", window: WindowSliding, tps: 3,
			give: []arrival{
				{0, true, 0}, {400, true, 0}, {900, true, 0},
				{950, false, 50 * time.Millisecond},
				{1000, true, 0}, // the one at 0 left the window
				{1300, false, 100 * time.Millisecond},
				{1400, true, 0}, {1900, true, 0}, {2000, true, 0},
			},
		},
		{
			name: "sliding: refusals do not count", window: WindowSliding, tps: 2,
			give: []arrival{
				{0, true, 0}, {10, true, 0},
				{20, false, 980 * time.Millisecond}, {500, false, 500 * time.Millisecond},
				{1000, true, 0}, {1010, true, 0}, {1020, false, 980 * time.Millisecond},
			},
		},
		{
			name: "sliding: a burst across a second boundary is refused", window: WindowSliding, tps: 4,
			give: []arrival{
				{700, true, 0}, {800, true, 0}, {900, true, 0}, {999, true, 0},
				{1100, false, 600 * time.Millisecond}, {1200, false, 500 * time.Millisecond},
				{1700, true, 0},
			},
		},
		{
			name: "fixed: windows start at the first request", window: WindowFixed, tps: 2,
			give: []arrival{
				{300, true, 0}, {1200, true, 0},
				{1250, false, 50 * time.Millisecond}, // still the window [300, 1300)
				{1300, true, 0}, {1310, true, 0},
				{2299, false, time.Millisecond},
				{2300, true, 0},
			},
		},
		{
			name: "fixed: a burst across its boundary passes", window: WindowFixed, tps: 3,
			give: []arrival{
				{0, true, 0},
				{990, true, 0}, {995, true, 0}, {998, false, 2 * time.Millisecond},
				{1000, true, 0}, {1001, true, 0}, {1002, true, 0}, {1003, false, 997 * time.Millisecond},
			},
		},
		{
			name: "fixed: an idle stretch skips windows", window: WindowFixed, tps: 1,
			give: []arrival{
				{0, true, 0}, {5500, true, 0}, {5999, false, time.Millisecond}, {6000, true, 0},
			},
		},
	}
	base := time.Unix(1_700_000_000, 123_456_789)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newRateGate(tt.window, tt.tps)
			for _, a := range tt.give {
				ok, after := g.admit(base.Add(time.Duration(a.atMs) * time.Millisecond))
				if ok != a.ok || after != a.retryAfter {
					t.Errorf("at %d ms: ok %v, retry after %v; want %v, %v", a.atMs, ok, after, a.ok, a.retryAfter)
				}
			}
		})
	}
}

func TestNoCapNoGate(t *testing.T) {
	if g := newRateGate(WindowSliding, 0); g != nil {
		t.Errorf("tps 0 made a gate %T", g)
	}
}
