package campaign

import (
	"math"
	"testing"
)

// TestRecentPace: the targets done a second since the latest of the
// partitions' older readings (each partition's own, summed, until none has
// two); unknown (0) where a partition done by an older deliver has no
// reading, or the span is too short to say.
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
		// Its share over 40 s ago: it adds nothing (it added 1 a second,
		// its 50 since its older reading over 50 s, less and less).
		{"a partition done early", []partPace{
			{pace: "1000050000,300,1000040000,260", firstMs: 1_000_000_000, lastMs: latest, done: 360},
			{pace: "1000020000,100,1000010000,50", firstMs: 1_000_000_000, lastMs: 1_000_020_000, done: 100},
		}, 5},
		// A provider slowed down 2 s ago: the partition sending does 2.5
		// a second (5 since its older reading), and the one whose entries
		// wait for a slot did 100 in the second before its last reading,
		// 15 s ago. The pace is 2.5: summed per partition it read 8.75
		// (100 over the 16 s since that partition's older reading), and
		// came down only as the clock moved on.
		{"a partition idle since a burst", []partPace{
			{pace: "1000059000,510,1000058000,506", firstMs: 1_000_000_000, lastMs: latest, done: 511},
			{pace: "1000045000,400,1000044000,300", firstMs: 1_000_000_000, lastMs: 1_000_045_000, done: 400},
		}, 2.5},
		// Targets done after the newer reading count, up to the last.
		{"done since the newer reading", []partPace{
			{pace: "1000050000,300,1000040000,260", firstMs: 1_000_000_000, lastMs: 1_000_055_000, done: 360},
			{pace: "1000045000,120,1000030000,60", firstMs: 1_000_000_000, lastMs: 1_000_050_000, done: 160},
		}, 5 + (160-100)/20.0},
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
