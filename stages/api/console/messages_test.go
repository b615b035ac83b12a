package console_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/bench"
	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/api/console"
)

// sendMessage is POST /v1/messages as the operator, to users ([]int64) or
// raw tokens ([]map[string]string).
func (b *bed) sendMessage(id, title string, to any) {
	b.t.Helper()
	targets := "users"
	if _, ok := to.([]map[string]string); ok {
		targets = "tokens"
	}
	body, _ := json.Marshal(map[string]any{"id": id, "app": app, targets: to,
		"notification": map[string]string{"title": title, "body": "for " + id}})
	b.postMessage(string(body))
}

// postMessage is POST /v1/messages of body as the operator, accepted.
func (b *bed) postMessage(body string) {
	b.t.Helper()
	req, _ := http.NewRequestWithContext(b.t.Context(), http.MethodPost, b.url+"/v1/messages", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b.t.Fatalf("POST /v1/messages %s: %d", body, resp.StatusCode)
	}
}

// messageReport is GET /v1/messages/{id}.
func (b *bed) messageReport(id string) campaign.MessageReport {
	b.t.Helper()
	req, _ := http.NewRequestWithContext(b.t.Context(), http.MethodGet, b.url+"/v1/messages/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep campaign.MessageReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil || resp.StatusCode != http.StatusOK {
		b.t.Fatalf("GET /v1/messages/%s: %d, %v", id, resp.StatusCode, err)
	}
	return rep
}

// TestDirectMessages: messages sent through the API show on the messages
// page newest first with their outcome, the same figures GET
// /v1/messages/{id} reports; a message's own page follows it to done; the
// pipeline page shows the express lanes the messages went through, per
// partition.
func TestDirectMessages(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	b.startStages(20, 1000)
	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/messages"), waitJS(`document.getElementById("message-list") !== null`))
	if got := b.text("#message-list"); !strings.Contains(got, "No direct messages yet") {
		t.Errorf("empty message list says %q", got)
	}
	users := func(from, to int64) []int64 {
		var out []int64
		for u := from; u <= to; u++ {
			out = append(out, u)
		}
		return out
	}
	b.sendMessage("dm-1", "Your order shipped", append(users(1, 10), 900001, 900002)) // two nobody registered
	b.sendMessage("dm-2", "Your table is ready", users(11, 12))
	// The live rows pick both up and follow them to done.
	b.run(waitJS(`[...document.querySelectorAll("#message-list tr[data-message]")].map(r => r.dataset.message + ":" + r.dataset.state).join(",") === "dm-2:done,dm-1:done"`))
	got := js[string](b, `JSON.stringify([...document.querySelectorAll("#message-list tr[data-message]")].map(r =>
		[r.dataset.message, r.querySelector(".title").textContent, r.querySelector(".targets").textContent, r.querySelector(".sent").textContent,
		 r.querySelector(".failed").textContent, r.querySelector(".invalid").textContent]))`)
	var rows [][]string
	if err := json.Unmarshal([]byte(got), &rows); err != nil {
		t.Fatal(err)
	}
	var want [][]string
	for _, m := range []struct{ id, title string }{{"dm-2", "Your table is ready"}, {"dm-1", "Your order shipped"}} {
		rep := b.messageReport(m.id)
		want = append(want, []string{m.id, m.title, fmt.Sprint(rep.Targets), fmt.Sprint(rep.Sent), fmt.Sprint(rep.Failed), fmt.Sprint(rep.InvalidTokens)})
	}
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("message list %q, want the API's %q", rows, want)
	}
	if want[1][3] != "10" {
		t.Errorf("dm-1 sent %s, want one device for each of its 10 users", want[1][3])
	}

	b.run(clickJS("#open-dm-1"),
		waitJS(`location.pathname === "/ui/messages/dm-1" && document.getElementById("state").textContent === "done"`))
	page := js[string](b, `JSON.stringify([document.querySelector(".n-title").textContent, document.querySelector("#outcome .sent").textContent,
		document.querySelector("#outcome .targets").textContent, document.querySelector("#outcome div:nth-child(6) dd").textContent,
		document.querySelector("#outcome .no-devices").textContent])`)
	var facts []string
	if err := json.Unmarshal([]byte(page), &facts); err != nil {
		t.Fatal(err)
	}
	if facts[0] != "Your order shipped" || facts[1] != "10" || facts[2] != "12" || !strings.HasSuffix(facts[3], "UTC") || facts[4] != "2" {
		t.Errorf("message page shows %q", facts)
	}
	// What became of each device, by user, from the results stream: the
	// two users nobody registered have none.
	var wantDevices []string
	for u := 1; u <= 10; u++ {
		wantDevices = append(wantDevices, fmt.Sprintf("%d:sent", u))
	}
	if got := js[string](b, `[...document.querySelectorAll("#devices tbody tr")].map(r => r.dataset.user + ":" + r.dataset.outcome).join()`); got != strings.Join(wantDevices, ",") {
		t.Errorf("the devices table says %s, want %s", got, strings.Join(wantDevices, ","))
	}
	if n := js[int](b, `document.querySelectorAll("#devices-missing, #devices-more").length`); n != 0 {
		t.Errorf("the devices table says %d notes of devices missing or not shown, want none", n)
	}
	// On a phone: the devices table without a sideways scroll, each
	// device's outcome in view, and a send time on one line. At 390 px the
	// table scrolled (Reason out of view) and "UTC" wrapped under First
	// and Last send.
	b.run(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait),
		waitJS(`document.documentElement.clientWidth === 390`))
	if w := js[[]int](b, `(e => [e.scrollWidth, e.clientWidth])(document.querySelector("#devices").parentElement)`); w[0] > w[1] {
		t.Errorf("at 390 px the devices table scrolls sideways: %d px in %d", w[0], w[1])
	}
	if n := js[int](b, `(() => { const w = document.documentElement.clientWidth; return [...document.querySelectorAll("#devices tbody .state")].filter(e => {
		const r = e.getBoundingClientRect(); return r.width === 0 || r.right > w; }).length })()`); n != 0 {
		t.Errorf("at 390 px %d devices' outcomes are out of view", n)
	}
	if lines := js[[]int](b, `[...document.querySelectorAll("#outcome dt")].filter(d => /^(First|Last) send$/.test(d.textContent)).map(d => d.nextElementSibling).map(e => Math.round(e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight)))`); !slices.Equal(lines, []int{1, 1}) {
		t.Errorf("at 390 px First and Last send take %v lines, want one each", lines)
	}
	b.run(chromedp.EmulateViewport(1024, 768))
	// A message to raw tokens counts tokens, and has no one to mute it
	// nor anyone without devices: it read "Targets (people)" and "Muted 0".
	b.sendMessage("dm-3", "Raw", []map[string]string{{"platform": "ios", "token": strings.Repeat("ab", 32)},
		{"platform": "android", "token": "raw-fcm-token"}})
	b.run(chromedp.Navigate(b.url+"/ui/messages/dm-3"), waitJS(`document.getElementById("state").textContent === "done"`))
	raw := js[string](b, `JSON.stringify([document.querySelector("#outcome .targets").previousElementSibling.textContent,
		document.querySelector("#outcome .targets").textContent, document.querySelector("#outcome .sent").textContent,
		String(document.querySelector("#outcome .muted")), String(document.querySelector("#outcome .no-devices"))])`)
	if want := `["Targets (tokens)","2","2","null","null"]`; raw != want {
		t.Errorf("raw-token message page shows %s, want %s", raw, want)
	}
	// Raw tokens have no user: each row names its platform and token.
	if got, want := js[string](b, `[...document.querySelectorAll("#devices tbody tr")].map(r =>
		r.cells[0].textContent + ":" + r.cells[1].textContent + ":" + r.querySelector(".token").title + ":" + r.dataset.outcome).join()`),
		"—:android:raw-fcm-token:sent,—:ios:"+strings.Repeat("ab", 32)+":sent"; got != want {
		t.Errorf("the raw-token message's devices table says %s, want %s", got, want)
	}
	b.expect("status of 404")
	b.run(chromedp.Navigate(b.url+"/ui/messages/nope"), waitJS(`document.querySelector("p.error") !== null`))

	// The express lanes: each stage that has one shows both, express
	// first, each with its partitions; the consumer that read the
	// messages shows in the express lanes.
	b.run(chromedp.Navigate(b.url+"/ui/pipeline"), waitJS(`document.querySelector('section[data-stage="deliver"] .lane') !== null`))
	lanes := js[string](b, `JSON.stringify([...document.querySelectorAll("section[data-stage]")].map(s =>
		[s.dataset.stage, ...[...s.querySelectorAll(".lane")].map(l =>
			l.dataset.lane + ":" + l.dataset.stream + ":" + l.querySelectorAll("tr[data-partition]").length +
			(l.dataset.lane === "express" ? ":" + (l.querySelector(".consumer") !== null) : ""))]))`)
	var stages [][]string
	if err := json.Unmarshal([]byte(lanes), &stages); err != nil {
		t.Fatal(err)
	}
	var wantStages [][]string
	for _, st := range pipeline.Stages {
		row := []string{st.Name}
		for i, in := range st.Inputs() {
			lane := fmt.Sprintf("bulk:%s:%d", in, b.keys.Partitions)
			if st.Express && i == 0 { // the messages went through it
				lane = fmt.Sprintf("express:%s:%d:true", in, b.keys.Partitions)
			}
			row = append(row, lane)
		}
		wantStages = append(wantStages, row)
	}
	if !slices.EqualFunc(stages, wantStages, slices.Equal) {
		t.Errorf("pipeline lanes %q, want %q", stages, wantStages)
	}
}

// TestFinishedPagesStopPolling: a campaign's or message's page stops its
// refreshes once the state is final, and a page opened final makes none;
// both used to poll once a second for as long as they stayed open. Each
// record is made final behind the open page's back (the model's state in
// PostgreSQL, the message's counters in Redis), no stage runs.
func TestFinishedPagesStopPolling(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		path   string
		start  func(b *bed)
		finish func(b *bed)
	}{
		{"campaign", "/ui/campaigns/c1", func(b *bed) { b.create("c1", time.Time{}) }, func(b *bed) {
			if _, err := b.db.Exec(b.t.Context(), `UPDATE campaigns SET state = 'done' WHERE id = 'c1'`); err != nil {
				b.t.Fatal(err)
			}
		}},
		{"message", "/ui/messages/dm-1", func(b *bed) { b.sendMessage("dm-1", "Hi", []int64{1}) }, func(b *bed) {
			// Dedupe read its one listed user, who had no device.
			if err := b.rdb.Do(b.t.Context(), b.rdb.B().Hset().Key(b.keys.Stats(0, "dm-1")).FieldValue().
				FieldValue(pipeline.StatIn, "1").Build()).Error(); err != nil {
				b.t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t)
			tt.start(b)
			b.signIn()
			polls := func() int {
				requests, _, _ := b.rec.snapshot()
				n := 0
				for _, u := range requests {
					if strings.HasPrefix(u, b.url+tt.path+"/live") {
						n++
					}
				}
				return n
			}
			b.run(chromedp.Navigate(b.url+tt.path), waitJS(`document.getElementById("state") !== null`))
			// It polls while the record is under way.
			b.within(30*time.Second, waitJS(`(() => { window.polled = 0; document.body.addEventListener("htmx:afterSettle", () => window.polled++); return true })()`),
				waitJS(`window.polled >= 1`))
			tt.finish(b)
			b.within(30*time.Second, waitJS(`document.getElementById("state").textContent === "done"`))
			// The same page opened now, in another tab, is done from the start.
			fresh := b.secondTab()
			if err := chromedp.Do(fresh, chromedp.Navigate(b.url+tt.path), waitJS(`document.getElementById("state").textContent === "done"`)); err != nil {
				t.Fatal(err)
			}
			before := polls()
			// Three refresh intervals: both pages polled at least twice in
			// them before.
			time.Sleep(3 * console.Refresh)
			if after := polls(); after != before {
				t.Errorf("%d refreshes of %s after it was done, want none", after-before, tt.path)
			}
		})
	}
}

// TestIDOpensItsOwnKind: a direct message's id under /ui/campaigns/ opens
// the message's page, and a campaign's id under /ui/messages/ the
// campaign's. The dead letters of an express lane link their message's id
// as their campaign, and `results tail --campaign` takes either: both led
// to "There is no campaign …" or "There is no direct message …", of an id
// that exists.
func TestIDOpensItsOwnKind(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	if _, err := bench.Seed(t.Context(), b.dbURL, bench.SeedConfig{App: app, Users: 10, Channels: 1}); err != nil {
		t.Fatal(err)
	}
	b.create("c1", time.Time{})
	b.sendMessage("dm-1", "Hi", []int64{1})
	tests := []struct {
		path, to string
		status   int
	}{
		{"/ui/campaigns/dm-1", "/ui/messages/dm-1", http.StatusSeeOther},
		{"/ui/messages/c1", "/ui/campaigns/c1", http.StatusSeeOther},
		{"/ui/campaigns/c1", "", http.StatusOK},
		{"/ui/messages/dm-1", "", http.StatusOK},
		{"/ui/campaigns/nope", "", http.StatusNotFound},
		{"/ui/messages/nope", "", http.StatusNotFound},
	}
	for _, tt := range tests {
		status, _ := b.get(tt.path)
		if status != tt.status || b.location != tt.to {
			t.Errorf("%s: %d to %q, want %d to %q", tt.path, status, b.location, tt.status, tt.to)
		}
	}
}

// TestMessageHeadedByItsTitle: a direct message's page, and its tab, are
// named by its notification's title, else its body, as the messages list
// names it, with its id beside; one with neither (a silent push) by "Message
// <id>" alone. It was headed "Message <id>" always: an id a backend made up.
func TestMessageHeadedByItsTitle(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	for _, m := range []struct{ id, notification string }{
		{"order-7f3a", `{"title":"Your order shipped","body":"Track it"}`},
		{"table-19c2", `{"body":"Your table is ready"}`},
		{"sync-0b1d", `{"silent":true,"data":{"sync":"1"}}`},
	} {
		b.postMessage(`{"id":"` + m.id + `","app":"` + app + `","users":[1],"notification":` + m.notification + `}`)
	}
	tests := []struct {
		id        string
		wantH1    string
		wantTitle string
		wantID    string // beside the heading; "" for none
	}{
		{"order-7f3a", "Your order shipped", "Your order shipped · pushpipe", "order-7f3a"},
		{"table-19c2", "Your table is ready", "Your table is ready · pushpipe", "table-19c2"},
		{"sync-0b1d", "Message sync-0b1d", "Message sync-0b1d · pushpipe", ""},
	}
	b.signIn()
	for _, tt := range tests {
		b.run(chromedp.Navigate(b.url+"/ui/messages/"+tt.id), waitJS(`document.readyState === "complete"`))
		if got := b.text("main h1"); got != tt.wantH1 {
			t.Errorf("%s: headed %q, want %q", tt.id, got, tt.wantH1)
		}
		if got := js[string](b, `document.title`); got != tt.wantTitle {
			t.Errorf("%s: tab titled %q, want %q", tt.id, got, tt.wantTitle)
		}
		if got := b.text("#page-id"); got != tt.wantID {
			t.Errorf("%s: the id beside the heading reads %q, want %q", tt.id, got, tt.wantID)
		}
	}
}

// A message dedupe has not read yet says how many it lists: its page read
// "Targets 0", as if it went to nobody, until dedupe counted them (no
// stage runs in this bed, so it stays there).
func TestMessageBeingCountedSaysHowManyItLists(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	b.sendMessage("m-counting", "Hello", []int64{1, 2, 3})
	status, body := b.get("/ui/messages/m-counting")
	if m := regexp.MustCompile(`(?s)<dd class="targets">(.*?)</dd>`).FindStringSubmatch(body); status != 200 || m == nil ||
		!strings.Contains(m[1], "of 3 listed, still being counted") {
		t.Errorf("message page %d, targets %q; want them said of 3 listed", status, m)
	}
}
