package console_test

import (
	"math"
	"testing"
)

// TestChartShowsTenSecondsAtLeast: the sends/s chart's time axis spans ten
// seconds at least, ending at the latest point, and the whole data once it
// spans more. With one point, uPlot padded the time scale by the value's
// magnitude: a campaign's page, at its first sample, showed an axis from
// 2027 to 2029 with one dot at its left edge.
func TestChartShowsTenSecondsAtLeast(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		samples int     // 1 s apart; a point from the second on
		from    float64 // the axis's start, in seconds before the last sample
	}{
		{"one point", 2, 10},
		{"three points", 4, 10},
		{"twenty seconds of points", 21, 19}, // the first point is the second sample's
	}
	chart := chartBed(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := chart.chartPage(t)
			// Before any point: ten seconds up to now.
			empty := js[[]float64](b, `(() => { const s = document.getElementById("chart").uplot.scales.x; return [s.min, s.max, Date.now() / 1000] })()`)
			if w := empty[1] - empty[0]; math.Abs(w-10) > 1e-6 || math.Abs(empty[1]-empty[2]) > 300 {
				t.Errorf("no point yet: x from %v to %v (now %v), want the ten seconds up to now", empty[0], empty[1], empty[2])
			}
			sends := make([]int, tt.samples)
			for i := range sends {
				sends[i] = 10 * i
			}
			got := b.feed(sends)
			if got.points != tt.samples-1 || math.Abs(got.xMax-got.last) > 1e-6 || math.Abs(got.last-got.xMin-tt.from) > 1e-6 {
				t.Errorf("%d points, x from %v to %v s before the last sample; want %d points, from %v to 0",
					got.points, got.last-got.xMin, got.last-got.xMax, tt.samples-1, tt.from)
			}
		})
	}
}
