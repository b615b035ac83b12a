package console_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/bench"
	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/api/console"
)

// startStages seeds users devices of app in channel ch0 and runs every stage
// (`pushpipe all`, null sink) at tps sends per second on the bed's Redis
// prefix and database.
func (b *bed) startStages(users int64, tps int) {
	b.t.Helper()
	b.launch(users, tps, bench.SinkNull)
}

// launch is startStages with deliver sending to sink: bench.SinkFake starts
// the fake provider with fakeArgs.
func (b *bed) launch(users int64, tps int, sink string, fakeArgs ...string) {
	b.t.Helper()
	b.launchWith(nil, users, tps, sink, fakeArgs...)
}

// launchWith is launch with extra flags of `pushpipe all`.
func (b *bed) launchWith(allArgs []string, users int64, tps int, sink string, fakeArgs ...string) {
	b.t.Helper()
	if _, err := bench.Seed(b.t.Context(), b.dbURL, bench.SeedConfig{App: app, Users: users, Channels: 1}); err != nil {
		b.t.Fatal(err)
	}
	r, err := bench.Launch(b.t.Context(), bench.LaunchConfig{
		Servers: &bench.Servers{RedisAddr: env.Redis.Addr, DatabaseURL: b.dbURL},
		Bin:     pipelinetest.Binary(b.t), LogDir: filepath.Join(b.t.TempDir(), "logs"),
		Prefix: b.keys.Prefix, Partitions: b.keys.Partitions,
		ClaimIdle: 5 * time.Second, Sink: sink, FakeArgs: fakeArgs, TPS: tps, App: app, AllInOne: true,
		StageArgs: map[string][]string{"all": allArgs},
	})
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(r.Stop)
}

// TestNewCampaignRunsToDone: a campaign created from the form, with every
// stage running, shows on the list while it is sending, then done with its
// bar full, on the list and on its own page with its failures by reason;
// the pipeline page shows the stages' consumers.
func TestNewCampaignRunsToDone(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	// 300 users under the campaign's own cap of 20 sends/s (the form's
	// rate, one cluster-wide schedule in Redis): at least 15 s between the
	// first send and the last, whatever the machine's load, so the list's
	// one-second refreshes see it under way for certain (it needs two of
	// them). The fake provider refuses a twentieth of the tokens as
	// unregistered: the page shows why, by reason.
	const users, rate = 300, 20
	b.launch(users, 1000, bench.SinkFake, "--unregistered-rate", "0.05")
	b.signIn()
	// The list in a second tab, open before the campaign exists (opening a
	// tab on a loaded machine can take longer than the campaign), while
	// this one creates it and stays on its page (its chart samples every
	// refresh).
	list := b.secondTab()
	inList := func(actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(list, actions...); err != nil {
			t.Fatal(err)
		}
	}
	inList(chromedp.Navigate(b.url + "/ui/campaigns"))
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/new"),
		fillApp(app),
		chromedp.SendKeys(chromedp.ID("channels"), "ch0"),
		chromedp.SendKeys(chromedp.ID("title"), "Launch day"),
		chromedp.SendKeys(chromedp.ID("body"), "It is out"),
		chromedp.SendKeys(chromedp.ID("rate"), fmt.Sprint(rate)),
		chromedp.SendKeys(chromedp.ID("cid"), "launch-1"),
		// the preview follows the fields
		waitJS(`document.querySelector('.ios [data-preview="title"]').textContent === "Launch day" &&
			JSON.parse(document.querySelector('[data-preview="fcm"]').textContent).message.notification.body === "It is out"`),
		clickJS("#create"),
		waitJS(`location.pathname === "/ui/campaigns/launch-1" && document.querySelector("p.notice") !== null`),
	)
	// The list picks the campaign up by itself and shows it mid-send:
	// running with some sent, then, a refresh later, more sent and still
	// running. (Its bar is not asserted mid-send: it counts users done,
	// which deliver counts per entry, and this campaign's 300 users are
	// one entry: the bar goes from 0 to the end at once.)
	card := `document.querySelector('[data-campaign="launch-1"]')`
	sent := card + `.querySelector(".sent").textContent.replaceAll(",", "")`
	midSend := func(after int) string {
		return fmt.Sprintf(`(() => { const c = %s, n = Number(%s);
			return c.dataset.state === "running" && n > %d && n < %d })()`, card, sent, after, users)
	}
	inList(waitJS(midSend(0)))
	first, err := chromedp.Run(list, chromedp.Evaluate[int](`Number(`+sent+`)`))
	if err != nil {
		t.Fatal(err)
	}
	inList(waitJS(midSend(first)))
	if keepArtifacts() {
		// The README's screenshot (stages/api/console/screenshot.png):
		// this tab, the campaign's page in flight, a few refreshes into
		// its chart; whatever the page shows if it finished first.
		b.run(waitJS(`document.getElementById("state").textContent !== "running" ||
			document.getElementById("chart").uplot.data[0].length >= 6`))
		b.screenshotAs("campaign-in-flight.png")
	}
	b.run(waitJS(`document.getElementById("state").textContent === "done" && document.querySelector("#chart canvas") !== null &&
		document.querySelector("#failures tr[data-reason]") !== null`))
	// Its send times each on a line: "UTC" wrapped under them.
	if lines := js[[]int](b, `[...document.querySelectorAll("#live dt")].filter(d => /^(First|Last) send$/.test(d.textContent)).map(d => d.nextElementSibling).map(e => Math.round(e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight)))`); !slices.Equal(lines, []int{1, 1}) {
		t.Errorf("First and Last send take %v lines, want one each", lines)
	}
	inList(waitJS(fmt.Sprintf(`(() => { const c = %s;
			return c && c.dataset.state === "done" && c.querySelector("progress").value === 1000 })()`, card)))
	listSent, err := chromedp.Run(list, chromedp.Evaluate[string](card+`.querySelector(".sent").textContent`))
	if err != nil {
		t.Fatal(err)
	}
	inList(chromedp.Navigate(b.url+"/ui/pipeline"),
		waitJS(fmt.Sprintf(`document.querySelectorAll('section[data-stage]').length === %d &&
			document.querySelector('section[data-stage="deliver"] .consumer') !== null`, len(pipeline.Stages))))
	b.measure(list)
	rep, err := campaign.Progress(context.Background(), b.rdb, b.db, b.keys, "launch-1")
	if err != nil || rep.Sent+rep.Failed+rep.InvalidTokens != users || rep.InvalidTokens == 0 || rep.RatePerSecond != rate {
		t.Fatalf("progress %+v, %v", rep, err)
	}
	if listSent != fmt.Sprint(rep.Sent) {
		t.Errorf("the list shows %s sent, the campaign has %d", listSent, rep.Sent)
	}
	// What became of one user's devices, from the events deliver wrote:
	// every one of the campaign's outcomes is read, user 7's listed.
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/launch-1"), waitJS(`document.getElementById("lookup") !== null`),
		chromedp.SendKeys(chromedp.ID("lookup-user"), "7"), clickJS("#lookup button"),
		waitJS(`location.pathname === "/ui/campaigns/launch-1/user" && document.getElementById("devices") !== null`))
	if got := js[string](b, `[...document.querySelectorAll("#devices tbody tr")].map(r => r.dataset.user + ":" +
		(r.dataset.outcome === "sent" || r.dataset.outcome === "invalid")).join()`); got != "7:true" && got != "7:true,7:true" {
		t.Errorf("user 7's devices read %q, want one or two, sent or invalid", got)
	}
	if n := js[int](b, `document.querySelectorAll("#devices-missing").length`); n != 0 {
		t.Errorf("the lookup says outcomes are missing: the %d of this campaign were all written", users)
	}
}

// TestCappedCampaignBarGoesByItsAudience: split cuts a capped campaign as
// it goes (here 4 s of sends ahead, 80 of its 600 users a pass), so while
// it is sending most of its targets are not found yet. Its page counts the
// people done against its audience, which split counted: the bar has a
// value (it had none while splitting), and the audience shows beside the
// targets.
func TestCappedCampaignBarGoesByItsAudience(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	const users, rate = 600, 20
	b.launchWith([]string{"--split-paced-ahead", "4s", "--split-range-size", "50"}, users, 1000, bench.SinkNull)
	b.signIn()
	if _, _, err := campaign.Create(t.Context(), b.rdb, b.db, b.keys,
		campaign.Campaign{ID: "capped", App: app, Channels: []string{"ch0"}, Title: "t", RatePerSecond: rate}); err != nil {
		t.Fatal(err)
	}
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/capped"),
		waitJS(`document.getElementById("state").textContent === "splitting" &&
			document.querySelector("dd.audience")?.textContent === "600" &&
			document.querySelector("progress").hasAttribute("value")`))
}

// TestTitleIsText: a campaign titled with markup shows the markup as text:
// no element made of it, no dialog, no request for its image.
func TestTitleIsText(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	const evil = `<img src=x onerror=alert(1)>`
	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/new"),
		fillApp(app),
		chromedp.SendKeys(chromedp.ID("channels"), "nobody"),
		chromedp.SendKeys(chromedp.ID("title"), evil),
		chromedp.SendKeys(chromedp.ID("cid"), "xss"),
		clickJS("#allow-empty"), // nobody is subscribed: the title is the test
		clickJS("#create"),
		waitJS(`location.pathname === "/ui/campaigns/xss"`),
		chromedp.Navigate(b.url+"/ui/campaigns"),
		waitJS(`document.querySelector('[data-campaign="xss"] .title') !== null`),
	)
	if got := b.text(`[data-campaign="xss"] .title`); got != evil {
		t.Errorf("title shown as %q, want the text %q", got, evil)
	}
	if n := js[int](b, `document.querySelectorAll("main img").length`); n != 0 {
		t.Errorf("%d img elements in the page", n)
	}
	// One refresh of the live rows, which renders the list again; the
	// keyboard's focus stays on the campaign's link through it.
	b.run(chromedp.Focus(chromedp.ID("open-xss")),
		chromedp.Evaluate[chromedp.Void](`document.body.addEventListener("htmx:afterSettle", () => { window.settled = true })`),
		waitJS(`window.settled === true && document.querySelector('[data-campaign="xss"] .title').textContent === `+"`"+evil+"`"+``))
	if n := js[int](b, `document.querySelectorAll("main img").length`); n != 0 {
		t.Errorf("%d img elements in the page after a refresh", n)
	}
	if id := js[string](b, `document.activeElement.id`); id != "open-xss" {
		t.Errorf("after a refresh the focus is on %q, want the campaign's link", id)
	}
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/xss"), waitJS(`document.querySelector(".n-title") !== null`))
	if got := b.text(".n-title"); got != evil {
		t.Errorf("campaign page title %q", got)
	}
	for _, u := range func() []string { r, _, _ := b.rec.snapshot(); return r }() {
		if strings.HasSuffix(u, "/x") {
			t.Errorf("the page requested the title's image: %s", u)
		}
	}
}

// TestScheduleAndCancel: a campaign scheduled from the form waits; Cancel
// asks first ("keep sending" leaves it alone), then cancels it: its start
// entry is taken back and nothing was sent. Canceled, its page and the
// list still say when it was to start: a bare "canceled" hid the time.
func TestScheduleAndCancel(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	b.signIn()
	at := time.Now().UTC().Add(time.Hour).Format("2006-01-02T15:04")
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/new"),
		fillApp(app),
		chromedp.SendKeys(chromedp.ID("channels"), "ch0"),
		chromedp.SendKeys(chromedp.ID("title"), "Later"),
		chromedp.SendKeys(chromedp.ID("cid"), "c1"),
		clickJS(`input[name="when"][value="later"]`),
		chromedp.SetValue(chromedp.CSS(`input[name="send_at"]`), at),
		clickJS("#allow-empty"), // no devices are seeded: only the schedule is tested
		clickJS("#create"),
		waitJS(`location.pathname === "/ui/campaigns/c1" && document.getElementById("state").textContent === "scheduled"`),
	)
	if d := b.delayedStarts(); d != 1 {
		t.Fatalf("%d delayed campaign starts, want the scheduled one", d)
	}
	b.run(clickJS("#cancel"),
		waitJS(`location.pathname === "/ui/campaigns/c1/cancel" && document.getElementById("confirm-cancel") !== null`),
		clickJS("form.row a.button"),
		waitJS(`location.pathname === "/ui/campaigns/c1" && document.getElementById("state").textContent === "scheduled"`),
		clickJS("#cancel"),
		waitJS(`document.getElementById("confirm-cancel") !== null`),
		clickJS("#confirm-cancel"),
		waitJS(`location.pathname === "/ui/campaigns/c1" && document.getElementById("state").textContent === "canceled" &&
			document.querySelector("p.notice") !== null && document.getElementById("cancel") === null`),
	)
	rep, err := campaign.Progress(t.Context(), b.rdb, b.db, b.keys, "c1")
	if err != nil || rep.State != campaign.StateCanceled || rep.Sent != 0 {
		t.Errorf("after cancel: %+v, %v", rep, err)
	}
	if d := b.delayedStarts(); d != 0 {
		t.Errorf("%d delayed campaign starts after the cancel, want 0", d)
	}
	// The form's time is UTC, to the minute.
	want := "canceled, was scheduled for " + strings.Replace(at, "T", " ", 1) + ":00 UTC"
	for _, path := range []string{"/ui/campaigns/c1", "/ui/campaigns"} {
		b.run(chromedp.Navigate(b.url+path), waitJS(`document.readyState === "complete"`))
		// The "Expected finish" of c1's figures, as the operator reads it.
		got := js[string](b, `(() => {
			const root = document.querySelector('[data-campaign="c1"]') || document.getElementById("live");
			const dt = root && [...root.querySelectorAll("dt")].find(e => e.innerText.trim() === "Expected finish");
			return dt ? dt.nextElementSibling.innerText.trim() : "";
		})()`)
		if got != want {
			t.Errorf("%s: c1's Expected finish reads %q, want %q", path, got, want)
		}
	}
}

// delayedStarts counts the campaign entries waiting for their time.
func (b *bed) delayedStarts() int64 {
	b.t.Helper()
	st, err := pipeline.Status(b.t.Context(), b.rdb, b.keys, pipeline.StreamCampaigns)
	if err != nil {
		b.t.Fatal(err)
	}
	return st[0].Delayed
}

// measure logs what the console costs the API: each page's time to answer,
// and the CPU of this process (the API, the test and chromedp's client)
// while three pages refresh.
func (b *bed) measure(list context.Context) {
	b.t.Helper()
	var cookie string
	for _, c := range b.cookies() {
		cookie = c.Name + "=" + c.Value
	}
	for _, path := range []string{"/ui/campaigns", "/ui/campaigns/rows", "/ui/campaigns/launch-1", "/ui/campaigns/launch-1/live",
		"/ui/pipeline", "/ui/pipeline/live", "/ui/deadletters"} {
		req, _ := http.NewRequest("GET", b.url+path, nil)
		req.Header.Set("Cookie", cookie)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		// 286: the done campaign's live part, with htmx's "stop polling".
		if want := map[bool]int{true: 286, false: http.StatusOK}[strings.HasSuffix(path, "/launch-1/live")]; resp.StatusCode != want {
			b.t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
		b.t.Logf("GET %s: %v", path, time.Since(start).Round(100*time.Microsecond))
	}
	// Fresh tabs for the campaign page and the pipeline: this test's own
	// tab stays on the campaign's page with the chart of the whole run.
	campaignTab, third := b.secondTab(), b.secondTab()
	count := `document.body.addEventListener("htmx:afterSettle", () => { window.refreshes = (window.refreshes || 0) + 1 })`
	for _, tab := range []struct {
		ctx  context.Context
		path string
	}{{campaignTab, "/ui/campaigns/launch-1"}, {list, "/ui/campaigns"}, {third, "/ui/pipeline"}} {
		if err := chromedp.Do(tab.ctx, chromedp.Navigate(b.url+tab.path), waitJS(`document.readyState === "complete"`),
			chromedp.Evaluate[chromedp.Void](count)); err != nil {
			b.t.Fatal(err)
		}
	}
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	// The campaign is done: its page, open, polls no more; the list and
	// the pipeline refresh every second.
	for _, tab := range []context.Context{list, third} {
		if err := chromedp.Do(tab, waitJS(`window.refreshes >= 10`)); err != nil {
			b.t.Fatal(err)
		}
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	wall := time.Since(start)
	cpu := time.Duration(syscall.TimevalToNsec(after.Utime) + syscall.TimevalToNsec(after.Stime) -
		syscall.TimevalToNsec(before.Utime) - syscall.TimevalToNsec(before.Stime))
	b.t.Logf("three pages open (the done campaign's idle), 10 refreshes of the list and the pipeline: %v CPU in %v (%.2f%% of one core), API, test and chromedp client together",
		cpu.Round(time.Millisecond), wall.Round(time.Millisecond), 100*cpu.Seconds()/wall.Seconds())
}

// TestUnknownAppRefused: the form refuses an app the API does not know, as
// POST /v1/campaigns does (422), in its words; nothing is stored. Typed
// over the app the form fills in (fillApp).
func TestUnknownAppRefused(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	b.expect("status of 400") // the refused form, answered 400 with its error
	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/new"),
		fillApp("com.example.unknown"),
		chromedp.SendKeys(chromedp.ID("channels"), "nobody"),
		chromedp.SendKeys(chromedp.ID("title"), "Hello"),
		chromedp.SendKeys(chromedp.ID("cid"), "unknown-app"),
		clickJS("#create"),
		waitJS(`document.querySelector(".error[role=alert]") !== null`),
	)
	// The API's words: the apps' source, and its apps when few.
	if got, want := b.text(".error[role=alert]"), `App "com.example.unknown" is not known to this API: its apps are those of PUSHPIPE_APP_KEYS ("com.example.news")`; !strings.Contains(got, want) {
		t.Errorf("the form says %q, want %q", got, want)
	}
	if keepArtifacts() {
		b.screenshotAs("unknown-app.png")
	}
	var n int
	if err := b.db.QueryRow(t.Context(), `SELECT count(*) FROM campaigns`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d campaigns stored (%v), want none", n, err)
	}
}

// TestPastSendAtRefused: "Send at" a time already past is refused, naming
// the time and the current UTC time, and nothing is stored or queued. The
// API starts a campaign whose send_at is past at once, and so did the
// form: a local time taken for UTC, or yesterday's date, sent the
// campaign to everyone on the spot.
func TestPastSendAtRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ago  time.Duration
	}{
		{"an hour ago", time.Hour},
		{"a day ago", 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t)
			b.expect("status of 400") // the refused form
			b.signIn()
			at := time.Now().UTC().Add(-tt.ago).Format("2006-01-02T15:04")
			b.run(chromedp.Navigate(b.url+"/ui/campaigns/new"),
				fillApp(app),
				chromedp.SendKeys(chromedp.ID("channels"), "ch0"),
				chromedp.SendKeys(chromedp.ID("title"), "Too late"),
				chromedp.SendKeys(chromedp.ID("cid"), "past"),
				clickJS(`input[name="when"][value="later"]`),
				chromedp.SetValue(chromedp.CSS(`input[name="send_at"]`), at),
				clickJS("#create"))
			b.within(30*time.Second, waitJS(`document.querySelector(".error[role=alert]") !== null`))
			if got := b.text(".error[role=alert]"); !strings.Contains(got, "already past") {
				t.Errorf("the form says %q, want it to say the time is past", got)
			}
			var n int
			if err := b.db.QueryRow(t.Context(), `SELECT count(*) FROM campaigns`).Scan(&n); err != nil || n != 0 {
				t.Errorf("%d campaigns stored (%v), want none", n, err)
			}
			// The form keeps what was typed, the time included.
			if got := js[string](b, `document.querySelector('input[name="send_at"]').value`); got != at {
				t.Errorf("send_at is %q after the refusal, want %q", got, at)
			}
		})
	}
}

// TestEmptyAudienceRefused: the form refuses a campaign nobody would
// receive (an app without devices, a channel without subscribers), naming
// them and the box that creates it anyway, as POST /v1/campaigns refuses it
// without "allow_empty". The form used to create it: a typo ("ch9" for
// "ch0") was sent to nobody and reported done 0/0, as if it had worked.
func TestEmptyAudienceRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		seed       bool // 10 users with a device each, subscribed to ch0
		channels   string
		allowEmpty bool
		refusal    []string // what the refusal names; none: created
	}{
		{"a channel nobody subscribed to", true, "ch0, ch9", false, []string{`"ch9"`, `tick "Create it even if nobody would receive it"`}},
		{"an app without devices", false, "ch0", false, []string{`app "` + app + `" has no registered devices`}},
		{"created anyway when asked", true, "ch9", true, nil},
		{"a real audience", true, "ch0", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t)
			if tt.seed {
				if _, err := bench.Seed(t.Context(), b.dbURL, bench.SeedConfig{App: app, Users: 10, Channels: 1}); err != nil {
					t.Fatal(err)
				}
			}
			if tt.refusal != nil {
				b.expect("status of 400") // the refused form
			}
			b.signIn()
			b.run(chromedp.Navigate(b.url+"/ui/campaigns/new"),
				fillApp(app),
				chromedp.SendKeys(chromedp.ID("channels"), tt.channels),
				chromedp.SendKeys(chromedp.ID("title"), "Hello"),
				chromedp.SendKeys(chromedp.ID("cid"), "aud"))
			if tt.allowEmpty {
				b.run(clickJS("#allow-empty"))
			}
			b.run(clickJS("#create"))
			if tt.refusal == nil {
				b.within(30*time.Second, waitJS(`location.pathname === "/ui/campaigns/aud"`))
				return
			}
			b.within(30*time.Second, waitJS(`document.querySelector(".error[role=alert]") !== null`))
			got := b.text(".error[role=alert]")
			for _, want := range tt.refusal {
				if !strings.Contains(got, want) {
					t.Errorf("the form says %q, want it to name %s", got, want)
				}
			}
			var n int
			if err := b.db.QueryRow(t.Context(), `SELECT count(*) FROM campaigns`).Scan(&n); err != nil || n != 0 {
				t.Errorf("%d campaigns stored (%v), want none", n, err)
			}
		})
	}
}

// TestListPages: the campaign list pages by the model's cursor: every
// campaign once, newest first, and an "Older campaigns" link only when
// there are older ones. It used to offer the link under every full page,
// so a last page of exactly 20 led to an empty one.
func TestListPages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		n     int
		pages []int // campaigns on each page
	}{
		{"none", 0, []int{0}},
		{"a full page", 20, []int{20}},
		{"one more", 21, []int{20, 1}},
		{"two full pages", 40, []int{20, 20}},
	}
	older := regexp.MustCompile(`href="(/ui/campaigns\?before=[^"]+)">Older campaigns<`)
	card := regexp.MustCompile(`data-campaign="([^"]+)"`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newHTTPBed(t)
			var want []string // newest first
			for i := range tt.n {
				id := fmt.Sprintf("c%02d", i)
				if _, _, err := campaign.Create(t.Context(), b.rdb, b.db, b.keys, campaign.Campaign{ID: id, App: app, Channels: []string{"nobody"}, Title: id}); err != nil {
					t.Fatal(err)
				}
				want = append([]string{id}, want...)
			}
			var got []string
			path := "/ui/campaigns"
			for i, size := range tt.pages {
				status, body := b.get(path)
				if status != http.StatusOK {
					t.Fatalf("page %d (%s): %d", i+1, path, status)
				}
				ids := card.FindAllStringSubmatch(body, -1)
				if len(ids) != size {
					t.Errorf("page %d shows %d campaigns, want %d", i+1, len(ids), size)
				}
				for _, m := range ids {
					got = append(got, m[1])
				}
				link := older.FindStringSubmatch(body)
				if last := i == len(tt.pages)-1; last != (link == nil) {
					t.Fatalf("page %d of %d: older-campaigns link %q", i+1, len(tt.pages), link)
				}
				if link != nil {
					path = html.UnescapeString(link[1])
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("the pages list %q, want %q", got, want)
			}
		})
	}
}

// TestFormPostedTwiceIsOneCampaign: the new-campaign form posted twice as
// served (a double click on Create, a browser resending it) creates one
// campaign, and both posts lead to it; the same form posted again with
// other content is refused, naming the campaign it made. Without an Id,
// each post used to get a fresh id: two campaigns, everyone notified twice.
func TestFormPostedTwiceIsOneCampaign(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		second func(url.Values) // how the second post differs
		want   int              // the second post's status
	}{
		{"the same form twice", func(url.Values) {}, http.StatusSeeOther},
		{"the same form with another title", func(v url.Values) { v.Set("title", "Other") }, http.StatusBadRequest},
	}
	field := func(body, name string) string {
		m := regexp.MustCompile(`name="` + name + `" value="([^"]*)"`).FindStringSubmatch(body)
		if m == nil {
			return ""
		}
		return html.UnescapeString(m[1])
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newHTTPBed(t)
			_, page := b.get("/ui/campaigns/new")
			form := url.Values{"csrf": {field(page, "csrf")}, "app": {app}, "channels": {"ch0"}, "title": {"Once"},
				"ttl_seconds": {"86400"}, "when": {"now"}, "allow_empty": {"1"}}
			if key := field(page, "key"); key != "" {
				form.Set("key", key)
			}
			status, first, body := b.post("/ui/campaigns", form)
			if status != http.StatusSeeOther {
				t.Fatalf("first post: %d %s", status, body)
			}
			tt.second(form)
			status, again, body := b.post("/ui/campaigns", form)
			if status != tt.want {
				t.Errorf("second post: %d, want %d", status, tt.want)
			}
			if status == http.StatusSeeOther && again != first {
				t.Errorf("the second post leads to %s, the first to %s", again, first)
			}
			id := strings.TrimSuffix(strings.TrimPrefix(first, "/ui/campaigns/"), "?done=created")
			if status == http.StatusBadRequest && !strings.Contains(body, "already created campaign "+id) {
				t.Errorf("the refusal does not name campaign %s:\n%s", id, body)
			}
			var n int
			if err := b.db.QueryRow(t.Context(), `SELECT count(*) FROM campaigns`).Scan(&n); err != nil || n != 1 {
				t.Errorf("%d campaigns stored (%v), want 1", n, err)
			}
		})
	}
}

// TestFormGivenAMessagesID: campaigns and direct messages share ids, so the
// form given a message's id is refused saying whose id it is, not "already
// used for a different campaign", which sends the operator looking for a
// campaign that does not exist.
func TestFormGivenAMessagesID(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	b.postMessage(`{"id":"chat-7","app":"` + app + `","users":[7],"notification":{"body":"hi"}}`)
	_, page := b.get("/ui/campaigns/new")
	csrf := formCSRF(t, page)
	form := url.Values{"csrf": {csrf}, "id": {"chat-7"}, "app": {app}, "channels": {"ch0"}, "title": {"Hi"},
		"ttl_seconds": {"86400"}, "when": {"now"}, "allow_empty": {"1"}}
	status, _, body := b.post("/ui/campaigns", form)
	if want := "Campaign id chat-7 is a direct message&#39;s id"; status != http.StatusBadRequest || !strings.Contains(body, want) {
		t.Errorf("posted with a message's id: %d, want 400 saying %q:\n%s", status, want, body)
	}
}

// TestPreviewFollowsAnyData: the new-campaign preview keeps following the
// form whatever the Data field holds while it is typed; JSON that is no
// object shows as such. "null" made the preview throw (the bed fails a
// test on any exception in the page) and stop following the fields.
func TestPreviewFollowsAnyData(t *testing.T) {
	t.Parallel()
	tests := []struct {
		data string
		key  string // the preview's data key
	}{
		{"null", "(not a JSON object)"},
		{"[1, 2]", "(not a JSON object)"},
		{`"text"`, "(not a JSON object)"},
		{"{", "(invalid JSON)"},
		{`{"url": "https://example.com"}`, "url"},
		{"9007199254740993", "(not a JSON object)"},
	}
	b := newBed(t)
	b.signIn()
	for i, tt := range tests {
		title := fmt.Sprintf("Title %d", i)
		b.run(chromedp.Navigate(b.url+"/ui/campaigns/new"),
			chromedp.SendKeys(chromedp.ID("data"), tt.data),
			chromedp.SendKeys(chromedp.ID("title"), title))
		b.within(30*time.Second, waitJS(fmt.Sprintf(`document.querySelector('.ios [data-preview="title"]').textContent === %q &&
			%q in JSON.parse(document.querySelector('[data-preview="apns"]').textContent)`, title, tt.key)))
	}
}

// TestCancelOutcomes: a Cancel that does not cancel says why, with the
// status POST /v1/campaigns/{id}/cancel gives: 404 for no such campaign
// (a direct message included), 409 for one already done, 503 when Redis
// fails partway (its scheduled start cannot be taken back), with the advice
// to try again. Every failure used to be a 409 with the model's error.
func TestCancelOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		id     string
		setup  func(b *bed)
		status int
		says   string
	}{
		{"no such campaign", "nope", func(*bed) {}, http.StatusNotFound, "There is no campaign nope to cancel."},
		{"a direct message", "dm-1", func(b *bed) { b.sendMessage("dm-1", "Hi", []int64{1}) }, http.StatusNotFound, "dm-1 is a direct message"},
		{"already done", "c1", func(b *bed) {
			b.create("c1", time.Time{})
			if _, err := b.db.Exec(b.t.Context(), `UPDATE campaigns SET state = 'done' WHERE id = 'c1'`); err != nil {
				b.t.Fatal(err)
			}
		}, http.StatusConflict, "campaign c1 is already done: there is nothing left to cancel"},
		{"Redis fails partway", "c1", func(b *bed) {
			b.create("c1", time.Now().Add(time.Hour))
			// The delayed start's set holds a string: taking the start
			// back fails (WRONGTYPE), after the campaign was read.
			for p := range b.keys.Partitions {
				key := pipeline.DelayedKey(b.keys.Stream(pipeline.StreamCampaigns, p))
				if err := b.rdb.Do(b.t.Context(), b.rdb.B().Set().Key(key).Value("x").Build()).Error(); err != nil {
					b.t.Fatal(err)
				}
			}
		}, http.StatusServiceUnavailable, "Try again in a moment: canceling twice is safe."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newHTTPBed(t)
			tt.setup(b)
			_, form := b.get("/ui/campaigns/new")
			csrf := formCSRF(t, form)
			status, _, body := b.post("/ui/campaigns/"+tt.id+"/cancel", url.Values{"csrf": {csrf}})
			if status != tt.status || !strings.Contains(html.UnescapeString(body), tt.says) {
				t.Errorf("cancel: %d, want %d saying %q:\n%s", status, tt.status, tt.says, body)
			}
		})
	}
}

// create stores a campaign of nobody's through the model, scheduled at
// sendAt when it is not zero.
func (b *bed) create(id string, sendAt time.Time) {
	b.t.Helper()
	c := campaign.Campaign{ID: id, App: app, Channels: []string{"nobody"}, Title: id, SendAt: sendAt}
	if _, _, err := campaign.Create(b.t.Context(), b.rdb, b.db, b.keys, c); err != nil {
		b.t.Fatal(err)
	}
}

// TestListRefreshCost: a refresh of the campaign list costs PostgreSQL and
// Redis the same round trips whatever the page's length: one query for the
// page and one for its campaigns' content, one pipelined call for their
// counters. It read each campaign's content and counters on their own: a
// page of 20 cost 21 queries and 20 more Redis round trips a second, per
// open list.
func TestListRefreshCost(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	cost := func() (queries, redis int64) {
		t.Helper()
		if status, body := b.get("/ui/campaigns/rows"); status != http.StatusOK {
			t.Fatalf("rows: %d\n%s", status, body)
		}
		q, r := b.queries.n.Load(), b.redisCalls.n.Load()
		if status, body := b.get("/ui/campaigns/rows"); status != http.StatusOK {
			t.Fatalf("rows: %d\n%s", status, body)
		}
		return b.queries.n.Load() - q, b.redisCalls.n.Load() - r
	}
	b.create("c00", time.Time{})
	q1, r1 := cost()
	for i := 1; i < 20; i++ {
		b.create(fmt.Sprintf("c%02d", i), time.Time{})
	}
	q20, r20 := cost()
	t.Logf("per refresh of the list: %d PostgreSQL queries and %d Redis round trips with 1 campaign, %d and %d with 20", q1, r1, q20, r20)
	if q20 != q1 || q1 > 2 {
		t.Errorf("a refresh costs %d queries with 1 campaign and %d with 20, want the same, at most 2", q1, q20)
	}
	if r20 != r1 {
		t.Errorf("a refresh costs %d Redis round trips with 1 campaign and %d with 20, want the same", r1, r20)
	}
}

// TestCanceledPageCountsSendsInFlight: a canceled campaign's page goes on
// polling while the sends in flight at the cancel may still be counted, and
// stops once they are all in. It stopped at "canceled" and showed the sends
// counted by then, fewer than the campaign made, until reloaded. The sends
// are counted behind the page's back (the counters in Redis); no stage runs.
func TestCanceledPageCountsSendsInFlight(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	b.create("c1", time.Time{})
	if _, err := campaign.Cancel(t.Context(), b.rdb, b.db, b.keys, "c1"); err != nil {
		t.Fatal(err)
	}
	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/c1"), waitJS(`document.getElementById("state").textContent === "canceled"`))
	// A send in flight at the cancel is marked.
	if err := b.rdb.Do(t.Context(), b.rdb.B().Hset().Key(b.keys.Stats(0, "c1")).FieldValue().
		FieldValue(pipeline.StatSent, "3").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	b.within(30*time.Second, waitJS(`document.querySelector("#live .sent").textContent === "3"`))

	// Long after the cancel, the page settles: no more refreshes.
	if _, err := b.db.Exec(t.Context(), `UPDATE campaigns SET finished_at = now() - interval '1 hour' WHERE id = 'c1'`); err != nil {
		t.Fatal(err)
	}
	polls := func() int {
		requests, _, _ := b.rec.snapshot()
		n := 0
		for _, u := range requests {
			if strings.HasPrefix(u, b.url+"/ui/campaigns/c1/live") {
				n++
			}
		}
		return n
	}
	// One refresh sees the old cancel and ends the polling (286); then
	// three intervals without one.
	before := polls()
	deadline := time.Now().Add(30 * time.Second)
	for polls() == before && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(console.Refresh)
	settled := polls()
	time.Sleep(3 * console.Refresh)
	if after := polls(); after != settled {
		t.Errorf("%d refreshes after the canceled campaign settled, want none", after-settled)
	}
}

// TestFinishedCampaignIsNotOfferedACancel: the cancel page of a campaign
// already done, opened from an old link or answered 409 after a cancel that
// came too late, says there is nothing left to cancel, and asks nothing.
// It asked "Cancel c1? It is done: …", under the 409 saying it could not be.
func TestFinishedCampaignIsNotOfferedACancel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		method string
		status int
	}{
		{"the cancel page", http.MethodGet, http.StatusOK},
		{"a cancel that came too late", http.MethodPost, http.StatusConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newHTTPBed(t)
			b.create("c1", time.Time{})
			if _, err := b.db.Exec(t.Context(), `UPDATE campaigns SET state = 'done' WHERE id = 'c1'`); err != nil {
				t.Fatal(err)
			}
			_, form := b.get("/ui/campaigns/new")
			csrf := formCSRF(t, form)
			var status int
			var body string
			if tt.method == http.MethodPost {
				status, _, body = b.post("/ui/campaigns/c1/cancel", url.Values{"csrf": {csrf}})
			} else {
				status, body = b.get("/ui/campaigns/c1/cancel")
			}
			if status != tt.status {
				t.Errorf("%s: %d, want %d", tt.method, status, tt.status)
			}
			main := body[strings.Index(body, "<main"):]
			if strings.Contains(main, "? It is done") || strings.Contains(main, "confirm-cancel") {
				t.Errorf("a done campaign is asked to be canceled:\n%s", main)
			}
			if !strings.Contains(main, "done: there is nothing left to cancel") {
				t.Errorf("the page does not say there is nothing left to cancel:\n%s", main)
			}
		})
	}
}

// TestSettledCampaignHasNoEmptyChart: a campaign page opened once the
// campaign changes no more says what the chart would have shown and its
// average instead of drawing it. The chart is made from the page's own
// refreshes, so it stayed an empty grid from 0 to 1 under "Sends per
// second", as if the campaign had sent nothing.
func TestSettledCampaignHasNoEmptyChart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		state string
		sends bool // first and last send recorded
		says  string
	}{
		{"done after sends", "done", true, "averaged 100/s"},
		{"done with no sends", "done", false, "It made no sends."},
		{"failed", "failed", false, "This campaign is failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t)
			b.create("c1", time.Time{})
			if tt.sends {
				first := time.Now().Add(-time.Minute).UnixMilli()
				if err := b.rdb.Do(t.Context(), b.rdb.B().Hset().Key(b.keys.Stats(0, "c1")).FieldValue().FieldValue(pipeline.StatSent, "6000").
					FieldValue(pipeline.StatFirstMs, fmt.Sprint(first)).FieldValue(pipeline.StatLastMs, fmt.Sprint(first+60_000)).Build()).Error(); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := b.db.Exec(t.Context(), `UPDATE campaigns SET state = $1, finished_at = now() - interval '1 minute' WHERE id = 'c1'`, tt.state); err != nil {
				t.Fatal(err)
			}
			b.signIn()
			b.run(chromedp.Navigate(b.url+"/ui/campaigns/c1"), waitJS(`document.getElementById("state") !== null`))
			if js[bool](b, `document.getElementById("chart") !== null`) {
				t.Error("a settled campaign's page draws the (empty) chart")
			}
			if got := b.text("#no-chart"); !strings.Contains(got, tt.says) {
				t.Errorf("in place of the chart: %q, want it to say %q", got, tt.says)
			}
		})
	}
}

// TestListBeforeNothing: a list page whose ?before= names no campaign or
// message (a hand-edited link, an id of the other kind) says so with a 404
// and where the newest are. It said "The campaign list is unavailable: …
// not found", and an operator looked for a server that was down. A cursor
// that names one still pages.
func TestListBeforeNothing(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	b.create("c1", time.Time{})
	tests := []struct {
		path   string
		status int
		want   string
	}{
		{"/ui/campaigns?before=bogus", http.StatusNotFound, "This page lists the campaigns older than campaign &#34;bogus&#34;, and there is no campaign by that id: the newest are at /ui/campaigns."},
		{"/ui/campaigns?before=bad%20id", http.StatusNotFound, "there is no campaign by that id"},
		{"/ui/messages?before=bogus", http.StatusNotFound, "This page lists the messages older than message &#34;bogus&#34;, and there is no message by that id: the newest are at /ui/messages."},
		{"/ui/campaigns/rows?before=bogus", http.StatusOK, "there is no campaign by that id"},
		{"/ui/campaigns?before=c1", http.StatusOK, "No campaigns yet"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, body := b.get(tt.path)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Errorf("%d, want %d with %q in\n%s", status, tt.status, tt.want, body)
			}
			if strings.Contains(body, "unavailable") {
				t.Errorf("an unknown cursor reads as an outage:\n%s", body)
			}
		})
	}
}

// TestPreviewKeepsLargeIntegers: integers in Data past 2^53 - 1 (a user
// id 9007199254740993) show in the preview as typed, as deliver sends them
// (the API keeps Data's text): JSON.parse made them the nearest double,
// 9007199254740992, in both payloads.
func TestPreviewKeepsLargeIntegers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		preview string // data-preview key
		want    string // in its text
	}{
		{"apns", `"user_id": 9007199254740993`},
		{"apns", `"ids": [` + "\n" + `    9007199254740993,` + "\n" + `    -9223372036854775808`},
		{"apns", `"small": 42`},
		{"fcm", `"user_id": "9007199254740993"`},
		{"fcm", `"ids": "[9007199254740993,-9223372036854775808]"`},
	}
	b := newBed(t)
	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/new"),
		chromedp.SendKeys(chromedp.ID("data"), `{"user_id": 9007199254740993, "ids": [9007199254740993, -9223372036854775808], "small": 42}`),
		chromedp.SendKeys(chromedp.ID("title"), "Big ids"))
	b.within(30*time.Second, waitJS(`document.querySelector('.ios [data-preview="title"]').textContent === "Big ids"`))
	for _, tt := range tests {
		text := js[string](b, fmt.Sprintf(`document.querySelector('[data-preview=%q]').textContent`, tt.preview))
		if !strings.Contains(text, tt.want) {
			t.Errorf("%s preview lacks %s:\n%s", tt.preview, tt.want, text)
		}
	}
}

// TestChangeRate: a campaign's page shows its own cap and a form to change
// it (CSRF-protected, as Cancel); set, the page comes back with the new
// rate, which the record and Redis hold, and 0 removes it. A final
// campaign's page has no form.
func TestChangeRate(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	b.signIn()
	c := campaign.Campaign{ID: "c1", App: app, Channels: []string{"nobody"}, Title: "c1", SendAt: time.Now().Add(time.Hour), RatePerSecond: 40}
	if _, _, err := campaign.Create(t.Context(), b.rdb, b.db, b.keys, c); err != nil {
		t.Fatal(err)
	}
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/c1"),
		waitJS(`document.getElementById("cap").textContent === "40/s" && document.getElementById("rate").value === "40"`),
		setJS("#rate", "10"),
		clickJS("#set-rate"),
		waitJS(`location.search === "?done=rated" && document.querySelector("p.notice") !== null &&
			document.getElementById("cap").textContent === "10/s" && document.getElementById("rate").value === "10"`),
	)
	rep, err := campaign.Progress(t.Context(), b.rdb, b.db, b.keys, "c1")
	if err != nil || rep.RatePerSecond != 10 {
		t.Fatalf("after the form: %+v %v, want rate 10", rep, err)
	}
	if v, err := b.rdb.Do(t.Context(), b.rdb.B().Hget().Key(b.keys.Campaign("c1")).Field(campaign.HashRatePerSecond).Build()).ToString(); err != nil || v != "10" {
		t.Fatalf("Redis: rate %q %v, want 10", v, err)
	}
	b.run(setJS("#rate", "0"), clickJS("#set-rate"),
		waitJS(`document.getElementById("cap").textContent === "none" && document.getElementById("rate").value === "0"`))
	if _, err := campaign.Cancel(t.Context(), b.rdb, b.db, b.keys, "c1"); err != nil {
		t.Fatal(err)
	}
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/c1"),
		waitJS(`document.getElementById("state").textContent === "canceled" && document.getElementById("rate-form") === null`))
}

// TestRateOutcomes: the rate form's refusals, as PATCH /v1/campaigns/{id}
// answers them, each with its sentence; without its CSRF token nothing
// changes.
func TestRateOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		id     string
		rate   string
		setup  func(b *bed)
		status int
		says   string
	}{
		{"not a number", "c1", "fast", func(b *bed) { b.create("c1", time.Time{}) }, http.StatusBadRequest, "Rate not changed: give a whole number of sends per second from 0"},
		{"negative", "c1", "-1", func(b *bed) { b.create("c1", time.Time{}) }, http.StatusBadRequest, "from 0 (no cap of its own) to 1,000,000"},
		{"too high", "c1", "1000001", func(b *bed) { b.create("c1", time.Time{}) }, http.StatusBadRequest, "Rate not changed"},
		{"no such campaign", "nope", "5", func(*bed) {}, http.StatusNotFound, "There is no campaign nope."},
		{"a direct message", "dm-1", "5", func(b *bed) { b.sendMessage("dm-1", "Hi", []int64{1}) }, http.StatusNotFound, "dm-1 is a direct message, not a campaign: a message has no rate of its own."},
		{"already done", "c1", "5", func(b *bed) {
			b.create("c1", time.Time{})
			if _, err := b.db.Exec(b.t.Context(), `UPDATE campaigns SET state = 'done' WHERE id = 'c1'`); err != nil {
				b.t.Fatal(err)
			}
		}, http.StatusConflict, "Rate not changed: campaign c1 is already done: its rate can no longer change."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newHTTPBed(t)
			tt.setup(b)
			_, form := b.get("/ui/campaigns/new")
			csrf := formCSRF(t, form)
			status, _, body := b.post("/ui/campaigns/"+tt.id+"/rate", url.Values{"csrf": {csrf}, "rate_per_second": {tt.rate}})
			if status != tt.status || !strings.Contains(html.UnescapeString(body), tt.says) {
				t.Errorf("rate: %d, want %d saying %q:\n%s", status, tt.status, tt.says, body)
			}
		})
	}
	t.Run("no CSRF token", func(t *testing.T) {
		t.Parallel()
		b := newHTTPBed(t)
		b.create("c1", time.Time{})
		b.get("/ui/campaigns/new") // signed in, as above
		if status, _, _ := b.post("/ui/campaigns/c1/rate", url.Values{"rate_per_second": {"5"}}); status != http.StatusForbidden {
			t.Errorf("a POST without its CSRF token: %d, want 403", status)
		}
		if c, err := campaign.Load(t.Context(), b.db, "c1"); err != nil || c.RatePerSecond != 0 {
			t.Errorf("after a refused POST: rate %d %v, want 0", c.RatePerSecond, err)
		}
	})
}
