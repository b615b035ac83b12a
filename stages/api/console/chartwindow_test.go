package console_test

import (
	"math"
	"strconv"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
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
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t)
			if _, _, err := campaign.Create(t.Context(), b.rdb, b.db, b.keys, campaign.Campaign{ID: "c1", App: app, Channels: []string{"nobody"}, Title: "Chart"}); err != nil {
				t.Fatal(err)
			}
			b.signIn()
			b.run(chromedp.Navigate(b.url+"/ui/campaigns/c1"),
				waitJS(`document.getElementById("chart").uplot !== undefined && document.getElementById("sample") !== null`))
			// Before any point: ten seconds up to now.
			empty := js[[]float64](b, `(() => { const s = document.getElementById("chart").uplot.scales.x; return [s.min, s.max, Date.now() / 1000] })()`)
			if w := empty[1] - empty[0]; math.Abs(w-10) > 1e-6 || math.Abs(empty[1]-empty[2]) > 300 {
				t.Errorf("no point yet: x from %v to %v (now %v), want the ten seconds up to now", empty[0], empty[1], empty[2])
			}
			// As TestChartFromZero: the samples are the test's alone.
			got := js[[]float64](b, `(() => {
				document.getElementById("live").remove();
				const s = document.createElement("div");
				s.id = "sample";
				document.body.append(s);
				let t = 1e9;
				Date.now = () => t;
				for (let i = 0; i < `+strconv.Itoa(tt.samples)+`; i++) {
					t += 1000;
					s.dataset.sends = 10 * i;
					document.body.dispatchEvent(new Event("htmx:afterSettle"));
				}
				const u = document.getElementById("chart").uplot;
				return new Promise(r => requestAnimationFrame(() => r([u.data[0].length, u.scales.x.min, u.scales.x.max, t / 1000])));
			})()`)
			points, lo, hi, last := got[0], got[1], got[2], got[3]
			if points != float64(tt.samples-1) || math.Abs(hi-last) > 1e-6 || math.Abs(last-lo-tt.from) > 1e-6 {
				t.Errorf("%v points, x from %v to %v s before the last sample; want %d points, from %v to 0", points, last-lo, last-hi, tt.samples-1, tt.from)
			}
		})
	}
}
