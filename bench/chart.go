package bench

import (
	"fmt"
	"os"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// WriteChart draws the run as a PNG: devices delivered per second on top,
// each stage's backlog (entries appended but not yet acknowledged: lag +
// pending) below, both over seconds since the trigger.
func WriteChart(path string, samples []Sample, t0 time.Time) error {
	if len(samples) < 2 {
		return fmt.Errorf("too few samples (%d) for a chart", len(samples))
	}
	rate := plot.New()
	rate.Title.Text = "devices delivered per second (over the last second)"
	rate.X.Label.Text = "seconds since the campaign was created"
	rate.Y.Label.Text = "sends/s"
	// The rate is taken over the last second of samples: per 250 ms it is
	// too jumpy to read.
	var pts plotter.XYs
	j := 0
	for i := 1; i < len(samples); i++ {
		b := samples[i]
		for j < i-1 && b.At.Sub(samples[j+1].At) >= time.Second {
			j++
		}
		a := samples[j]
		dt := b.At.Sub(a.At).Seconds()
		if dt <= 0 {
			continue
		}
		pts = append(pts, plotter.XY{X: b.At.Sub(t0).Seconds(), Y: float64(b.Campaign.Sent-a.Campaign.Sent) / dt})
	}
	l, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	l.Color = plotutil.Color(0)
	rate.Add(l, plotter.NewGrid())

	lag := plot.New()
	lag.Title.Text = "backlog per stage (lag + pending entries)"
	lag.X.Label.Text = "seconds since the campaign was created"
	lag.Y.Label.Text = "entries"
	lag.Legend.Top = true
	for i, st := range StageStreams[:campaignStages] {
		var pts plotter.XYs
		for _, s := range samples {
			ss := s.Streams[st.Stage]
			pts = append(pts, plotter.XY{X: s.At.Sub(t0).Seconds(), Y: float64(ss.Lag + ss.Pending)})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(i + 1)
		l.Dashes = plotutil.Dashes(i)
		lag.Add(l)
		lag.Legend.Add(st.Stage+" ("+st.Stream+")", l)
	}
	lag.Add(plotter.NewGrid())

	end := samples[len(samples)-1].At.Sub(t0).Seconds()
	for _, p := range []*plot.Plot{rate, lag} {
		p.X.Min, p.X.Max = 0, end
		p.Y.Min = 0
	}
	img := vgimg.New(vg.Points(900), vg.Points(700))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(10)}
	plots := [][]*plot.Plot{{rate}, {lag}}
	canvases := plot.Align(plots, tiles, dc)
	rate.Draw(canvases[0][0])
	lag.Draw(canvases[1][0])

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteLatencyChart draws the messages benchmark's latencies (ms from the
// API's 202 to the provider's receipt, one per device) as a histogram, with
// the p50 and p99 in the title.
func WriteLatencyChart(path string, sorted []int64, m MessagesConfig) error {
	vals := make(plotter.Values, len(sorted))
	for i, v := range sorted {
		vals[i] = float64(v)
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("direct messages: %d/s × %d recipients, latency from 202 to receipt (p50 %d ms, p99 %d ms)",
		m.Rate, m.Recipients, quantile(sorted, 0.5), quantile(sorted, 0.99))
	if m.WithCampaign {
		p.Title.Text += ", beside a campaign"
	}
	p.X.Label.Text = "ms"
	p.Y.Label.Text = "receipts"
	bins := max(10, min(100, int(sorted[len(sorted)-1]-sorted[0])+1))
	h, err := plotter.NewHist(vals, bins)
	if err != nil {
		return err
	}
	h.FillColor = plotutil.Color(0)
	p.Add(h, plotter.NewGrid())
	p.X.Min, p.Y.Min = 0, 0
	return p.Save(9*vg.Inch, 4*vg.Inch, path)
}
