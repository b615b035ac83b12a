package campaign

import (
	"math"
	"testing"
)

// TestRecentPace: the targets done a second since each partition's older
// reading, summed; unknown (0) where a partition done by an older deliver
// has no reading, or the span is too short to say.
func TestRecentPace(t *testing.T) {
	const latest = 1_000_060_000 // the last target done, ms
	tests := []struct {
		name  string
		parts []partPace
		want  float64
	}{
		// 100 done in the 20 s since the older reading: 5/s, whatever the
		// average since the first send a minute ago (260 in 60 s).
		{"two readings", []partPace{{pace: "1000050000,300,1000040000,260", firstMs: 1_000_000_000, done: 360}}, 5},
		{"summed over partitions", []partPace{
			{pace: "1000050000,300,1000040000,260", firstMs: 1_000_000_000, done: 360},
			{pace: "1000050000,30,1000040000,20", firstMs: 1_000_000_000, done: 40},
		}, 6},
		// Until a partition has two, its average since its first send.
		{"one reading", []partPace{{pace: "1000055000,300", firstMs: 1_000_000_000, done: 360}}, 6},
		// A partition with nothing done yet adds nothing, reading or not.
		{"a partition with none done", []partPace{
			{pace: "1000050000,300,1000040000,260", firstMs: 1_000_000_000, done: 360},
			{},
		}, 5},
		// Its share over 40 s ago: it adds less and less.
		{"a partition done early", []partPace{
			{pace: "1000050000,300,1000040000,260", firstMs: 1_000_000_000, done: 360},
			{pace: "1000020000,100,1000010000,50", firstMs: 1_000_000_000, done: 100},
		}, 6},
		{"no reading (an older deliver)", []partPace{
			{pace: "1000050000,300,1000040000,260", firstMs: 1_000_000_000, done: 360},
			{firstMs: 1_000_000_000, done: 40},
		}, 0},
		{"under a second", []partPace{{pace: "1000059500,10", firstMs: 1_000_059_500, done: 10}}, 0},
		// A partition that just started adds nothing yet, and the others
		// still count: the estimate does not fall back to the average.
		{"a partition started under a second ago", []partPace{
			{pace: "1000050000,300,1000040000,260", firstMs: 1_000_000_000, done: 360},
			{pace: "1000059500,10", firstMs: 1_000_059_500, done: 10},
		}, 5},
		{"none done", []partPace{{}, {}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := recentPace(tt.parts, latest); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("recentPace = %v, want %v", got, tt.want)
			}
		})
	}
}
