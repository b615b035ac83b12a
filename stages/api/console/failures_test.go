package console_test

import (
	"cmp"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/bench"
	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// TestFailuresByReason: a campaign's page says none failed, then, as the
// per-partition reason hashes fill (the data contract: Keys.Reasons, summed
// by campaign.Reasons), shows each reason once with its devices summed,
// most first, with a bar each, its text escaped, without a reload.
func TestFailuresByReason(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	ctx := t.Context()
	// No stage runs: the campaign stays where it is, and only the test
	// writes its reasons.
	if _, _, err := campaign.Create(ctx, b.rdb, b.db, b.keys, campaign.Campaign{ID: "f1", App: app, Channels: []string{"nobody"}, Title: "Fails"}); err != nil {
		t.Fatal(err)
	}
	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/f1"),
		waitJS(`document.getElementById("no-failures") !== null && document.querySelector("#failures tr[data-reason]") === null`))

	const markup = `<b>no credentials</b>`
	for _, w := range []struct {
		p      int
		reason string
		n      int64
	}{{0, "Unregistered", 3}, {3, "Unregistered", 2}, {1, "BadDeviceToken", 7}, {2, markup, 1}} {
		if err := b.rdb.Do(ctx, b.rdb.B().Hincrby().Key(b.keys.Reasons(w.p, "f1")).Field(w.reason).Increment(w.n).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	// Another campaign's reasons are not this one's.
	if err := b.rdb.Do(ctx, b.rdb.B().Hincrby().Key(b.keys.Reasons(0, "other")).Field("Unregistered").Increment(100).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	b.run(waitJS(`document.querySelectorAll("#failures tr[data-reason]").length === 3 && document.getElementById("no-failures") === null`))
	// Rows, bars and markup read in one evaluation: the live part is
	// swapped every second.
	got := js[string](b, `JSON.stringify({
		rows: [...document.querySelectorAll("#failures tr[data-reason]")].map(r =>
			[r.querySelector(".reason").textContent, r.querySelector(".count").textContent,
			 String(r.querySelector("meter").value), String(r.querySelector("meter").max)]),
		bold: document.querySelectorAll("#failures b").length })`)
	var page struct {
		Rows [][]string
		Bold int
	}
	if err := json.Unmarshal([]byte(got), &page); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"BadDeviceToken", "7", "7", "7"}, {"Unregistered", "5", "5", "7"}, {markup, "1", "1", "7"}}
	if !slices.EqualFunc(page.Rows, want, slices.Equal) {
		t.Errorf("failures by reason %q, want %q", page.Rows, want)
	}
	if page.Bold != 0 {
		t.Errorf("a reason's markup made %d elements", page.Bold)
	}
}

// TestFailuresAtProvider: a campaign whose devices the fake provider
// refuses (unregistered and malformed tokens, by token) shows, once done,
// the reasons deliver recorded: the same table campaign.Reasons reads, and
// its devices add up to the campaign's failed and invalid ones.
func TestFailuresAtProvider(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	b.launch(300, 1000, bench.SinkFake, "--unregistered-rate", "0.2", "--bad-token-rate", "0.1")
	if _, _, err := campaign.Create(t.Context(), b.rdb, b.db, b.keys, campaign.Campaign{ID: "bad-1", App: app, Channels: []string{"ch0"}, Title: "Refused"}); err != nil {
		t.Fatal(err)
	}
	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/bad-1"),
		waitJS(`document.getElementById("state").textContent === "done" && document.querySelector("#failures tr[data-reason]") !== null`))
	got := js[string](b, `JSON.stringify([...document.querySelectorAll("#failures tr[data-reason]")].map(r =>
		[r.querySelector(".reason").textContent, r.querySelector(".count").textContent.replaceAll(",", "")]))`)
	var rows [][]string
	if err := json.Unmarshal([]byte(got), &rows); err != nil {
		t.Fatal(err)
	}
	reasons, err := campaign.Reasons(t.Context(), b.rdb, b.keys, "bad-1")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := campaign.Progress(t.Context(), b.rdb, b.db, b.keys, "bad-1")
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, n := range reasons {
		sum += n
	}
	shown := map[string]int64{}
	for _, r := range rows {
		n, _ := strconv.ParseInt(r[1], 10, 64)
		shown[r[0]] = n
	}
	if !maps.Equal(shown, reasons) || len(rows) != len(reasons) {
		t.Errorf("page shows %q, campaign.Reasons %v", rows, reasons)
	}
	// APNs's "Unregistered" and FCM's "UNREGISTERED" are one failure named
	// by two providers: each row says whose it is.
	for _, r := range rows {
		if prov, _, _ := strings.Cut(r[0], " "); prov != "apns" && prov != "fcm" {
			t.Errorf("reason %q names no provider", r[0])
		}
	}
	if rep.InvalidTokens == 0 || sum != rep.Failed+rep.InvalidTokens {
		t.Errorf("reasons add up to %d devices; the campaign has %d failed and %d invalid", sum, rep.Failed, rep.InvalidTokens)
	}
	if !slices.IsSortedFunc(rows, func(a, b []string) int { return cmp.Compare(shown[b[0]], shown[a[0]]) }) {
		t.Errorf("reasons not most first: %q", rows)
	}
}

// TestChartFromZero: the sends/s chart's scale starts at zero, whatever the
// rates it shows. uPlot's own range hugs the data: a steady rate wavering
// by a few percent filled the chart from bottom to top, a stall and a
// surge to the eye. The samples are the page's own (the #sample element
// each refresh carries), fed at a clock the test sets, with the page's
// polling stopped, so the rates are exact.
func TestChartFromZero(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sent []int // the sent count at each of the 1 s apart samples
		max  float64
	}{
		{"steady", []int{0, 100, 205, 300, 402}, 115.5},
		{"idle", []int{0, 0, 0}, 1},
	}
	b := chartBed(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := b.chartPage(t)
			got := page.feed(tt.sent)
			if got.points != len(tt.sent)-1 || got.yMin != 0 || math.Abs(got.yMax-tt.max) > 1e-9 {
				t.Errorf("%d points, y from %v to %v; want %d points, y from 0 to %v", got.points, got.yMin, got.yMax, len(tt.sent)-1, tt.max)
			}
			// Its time axis ticks whole seconds, on a laptop's 1280 px
			// (a chart 1,120 px wide) as here: it ticked every half second
			// of its first ten, ":01.000 :01.500 …", one label crowding
			// the next.
			ticks := js[[]float64](page, `(() => {
				const u = document.getElementById("chart").uplot;
				u.setSize({width: 1120, height: 220});
				return new Promise(r => requestAnimationFrame(() => r(u.axes[0]._splits)));
			})()`)
			if slices.ContainsFunc(ticks, func(s float64) bool { return s != math.Trunc(s) }) {
				t.Errorf("the time axis ticks between seconds: %v, labelled %v", ticks, js[[]string](page, `document.getElementById("chart").uplot.axes[0]._values`))
			}
		})
	}
}

// chartBed is a bed signed in, with a campaign no stage sends: one for a
// test's cases, each on the campaign's page afresh (chartPage), rather than
// a browser context, a database and a sign-in each.
func chartBed(t *testing.T) *bed {
	b := newBed(t)
	if _, _, err := campaign.Create(t.Context(), b.rdb, b.db, b.keys, campaign.Campaign{ID: "c1", App: app, Channels: []string{"nobody"}, Title: "Chart"}); err != nil {
		t.Fatal(err)
	}
	b.signIn()
	return b
}

// chartPage opens the chart bed's campaign page, for subtest t, and waits
// for its chart: a page of its own, with its own clock and samples (feed
// replaces them), so one case's leave nothing to the next.
func (b *bed) chartPage(t *testing.T) *bed {
	sub := *b
	sub.t = t
	sub.run(chromedp.Navigate(b.url+"/ui/campaigns/c1"),
		waitJS(`document.getElementById("chart").uplot !== undefined && document.getElementById("sample") !== null`))
	return &sub
}

// chartState is the sends/s chart as drawn: its points, its scales, and
// the time of the last sample it was fed (seconds).
type chartState struct {
	points                 int
	xMin, xMax, yMin, yMax float64
	last                   float64
}

// feed stands in for the page's refreshes: it feeds the chart the sends
// given, one sample a second (from Date.now() = 1e9 ms), and reads the
// chart at its next frame, when uPlot has set its scales. htmx stops
// polling a region that left the page: the samples are the test's alone.
func (b *bed) feed(sends []int) chartState {
	b.t.Helper()
	all, _ := json.Marshal(sends)
	got := js[[]float64](b, `(() => {
		document.getElementById("live").remove();
		// A refresh that came before live was removed (a loaded box) left a
		// point of the real clock's: emptied in place, as u.data holds the
		// page's own arrays.
		const u = document.getElementById("chart").uplot;
		u.data[0].length = 0;
		u.data[1].length = 0;
		const s = document.createElement("div");
		s.id = "sample";
		document.body.append(s);
		let t = 1e9;
		Date.now = () => t;
		for (const n of `+string(all)+`) {
			t += 1000;
			s.dataset.sends = n;
			document.body.dispatchEvent(new Event("htmx:afterSettle"));
		}
		return new Promise(r => requestAnimationFrame(() => r([u.data[0].length, u.scales.x.min, u.scales.x.max, u.scales.y.min, u.scales.y.max, t / 1000])));
	})()`)
	return chartState{points: int(got[0]), xMin: got[1], xMax: got[2], yMin: got[3], yMax: got[4], last: got[5]}
}

// TestChartCountsWhatTheRateCounts: the sends/s chart and the Sends/s
// figure measure the same thing, devices sent or failed
// (campaign.Report.SendRate's count): a campaign whose devices only fail
// charts a rate above zero. The chart used to count sent devices alone,
// and showed zero beside a Rate that counted the failures.
func TestChartCountsWhatTheRateCounts(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	if _, _, err := campaign.Create(t.Context(), b.rdb, b.db, b.keys, campaign.Campaign{ID: "c1", App: app, Channels: []string{"nobody"}, Title: "Chart"}); err != nil {
		t.Fatal(err)
	}
	b.signIn()
	// A first point (two refreshes) before any device failed.
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/c1"),
		waitJS(`(() => { const u = document.getElementById("chart").uplot; return u !== undefined && u.data[1].length > 0 })()`))
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	stats := b.keys.Stats(0, "c1")
	if err := b.rdb.Do(t.Context(), b.rdb.B().Hset().Key(stats).FieldValue().FieldValue(pipeline.StatFailed, "500").
		FieldValue(pipeline.StatFirstMs, now).FieldValue(pipeline.StatLastMs, now).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	b.within(15*time.Second, waitJS(`(() => { const y = document.getElementById("chart").uplot.data[1]; return y[y.length - 1] > 0 })()`))
}

// TestChartTimesAreUTC: the sends/s chart writes its times in UTC, as every
// other time of the console does, whatever the browser's time zone. uPlot
// writes local time: in Tokyo a send at 19:51 UTC read 4:51am on the chart,
// beside "Last send 19:51:35 UTC". And in the console's format: uPlot's own
// read 7:51pm, its dates 12/6/26.
func TestChartTimesAreUTC(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	if _, err := chromedp.Call(b.tab, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Tokyo"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := campaign.Create(t.Context(), b.rdb, b.db, b.keys, campaign.Campaign{ID: "c1", App: app, Channels: []string{"nobody"}, Title: "Chart"}); err != nil {
		t.Fatal(err)
	}
	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/c1"),
		waitJS(`(() => { const u = document.getElementById("chart").uplot; return u !== undefined && u.data[0].length > 0 })()`))
	// The legend writes the point under the cursor with the axis's date
	// format: point at the first one and read it, beside its UTC hour.
	got := js[[]string](b, `(() => {
		const u = document.getElementById("chart").uplot, ts = u.data[0][0];
		u.setCursor({left: u.valToPos(ts, "x"), top: 10});
		const d = new Date(ts * 1000), h = String(d.getUTCHours()).padStart(2, "0"), m = String(d.getUTCMinutes()).padStart(2, "0");
		return [document.querySelector(".u-legend .u-series .u-value").textContent, h + ":" + m, u.axes[0]._values.join(" | ")];
	})()`)
	if !strings.Contains(got[0], got[1]) || strings.ContainsAny(got[0], "/apm") {
		t.Errorf("the chart writes a send at %s UTC as %q", got[1], got[0])
	}
	// Its axis too, as the console writes times: 24 hours, dates year first.
	if strings.ContainsAny(got[2], "/apm") {
		t.Errorf("the chart's time axis reads %q", got[2])
	}
}
