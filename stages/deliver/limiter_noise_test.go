package deliver

import (
	"testing"
	"time"
)

func TestDurationsSpread(t *testing.T) {
	base := time.Unix(1_700_000_000, 0) // a whole spreadPeriod
	ms := time.Millisecond
	// many returns n sends of duration d at offset at.
	type sends struct {
		at   time.Duration
		d    time.Duration
		many int
	}
	tests := []struct {
		name string
		give []sends
		at   time.Duration // when spread is asked
		want time.Duration
	}{
		{"none", nil, 0, 0},
		{"steady", []sends{{0, 5 * ms, 1000}}, time.Second, 0},
		{"one slow send is not a stall", []sends{{0, 5 * ms, 1000}, {0, 300 * ms, 1}}, time.Second, 0},
		{"a stall holding up 5%", []sends{{0, 5 * ms, 950}, {0, 65 * ms, 50}}, time.Second, 60 * ms},
		{"beyond the histogram", []sends{{0, 2 * ms, 900}, {0, time.Second, 100}}, time.Second, 253 * ms},
		{"the period before counts", []sends{{0, 40 * ms, 200}, {spreadPeriod, 10 * ms, 9800}}, spreadPeriod, 30 * ms},
		{"two periods back is forgotten", []sends{{0, 40 * ms, 100}, {2 * spreadPeriod, 10 * ms, 100}}, 2 * spreadPeriod, 0},
		{"asked a period later", []sends{{0, 10 * ms, 90}, {0, 30 * ms, 10}}, spreadPeriod, 20 * ms},
		{"asked long after", []sends{{0, 10 * ms, 90}, {0, 30 * ms, 10}}, 3 * spreadPeriod, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var x durations
			for _, s := range tt.give {
				for range s.many {
					x.add(base.Add(s.at), s.d)
				}
			}
			if got, _, _ := x.spread(base.Add(tt.at)); got != tt.want {
				t.Errorf("spread = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLatenessIsTheMostOfTwoSeconds(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	ms := time.Millisecond
	tests := []struct {
		name string
		give [][2]time.Duration // at, lateness
		at   time.Duration
		want time.Duration
	}{
		{"none", nil, 0, 0},
		{"this second", [][2]time.Duration{{0, 3 * ms}, {500 * ms, 7 * ms}, {900 * ms, 2 * ms}}, 900 * ms, 7 * ms},
		{"the second before", [][2]time.Duration{{0, 30 * ms}, {time.Second, 2 * ms}}, time.Second, 30 * ms},
		{"older is forgotten", [][2]time.Duration{{0, 30 * ms}, {2 * time.Second, 2 * ms}}, 2 * time.Second, 2 * ms},
		{"asked a second later", [][2]time.Duration{{0, 30 * ms}}, time.Second, 30 * ms},
		{"asked long after", [][2]time.Duration{{0, 30 * ms}}, 5 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var x lateness
			for _, g := range tt.give {
				x.add(base.Add(g[0]), g[1])
			}
			if got := x.recent(base.Add(tt.at)); got != tt.want {
				t.Errorf("recent = %v, want %v", got, tt.want)
			}
		})
	}
}
