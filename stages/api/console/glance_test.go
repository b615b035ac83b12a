package console_test

import (
	"context"
	"html"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/api"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// TestPipelineShowsWebhookReceivers: the pipeline page says, per webhook
// group, that its receiver fails (since when, its last error) or paused
// delivery (until when), and how many dead letters the group left, with a
// link to them, as `pushpipe status` does (webhook.ReadReceivers). The
// console showed neither: the groups read idle or running, their events
// waiting. Real webhook processes POST to real receivers: crm's answers
// 500 (its one event dead-lettered after a delivery), analytics' 429 with
// Retry-After: 120 (a failed delivery too, then a pause).
func TestPipelineShowsWebhookReceivers(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	receiver := func(h http.HandlerFunc) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL + "/hook"
	}
	run := func(group, url string, claimIdle time.Duration) {
		h, err := webhook.New(webhook.Config{Redis: b.rdb, Keys: b.keys, Group: group, URL: url, Secrets: [][]byte{[]byte("secret-0123456789abcdef")},
			Attempts: 1, Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		r := pipeline.NewRunner(b.rdb, b.keys, pipeline.Options{Stage: "webhook", Group: group, Stream: pipeline.StreamResults, Consumer: group + "-1",
			ClaimIdle: claimIdle, MaxDeliveries: 1, Block: 50 * time.Millisecond, AliveEvery: 200 * time.Millisecond}, h, zerolog.Nop(), nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		pipelinetest.Eventually(t, 30*time.Second, group+" ready", r.Ready)
	}
	run("crm", receiver(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "crm is down", http.StatusInternalServerError)
	}), 300*time.Millisecond)
	run("analytics", receiver(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
	}), time.Minute)
	ev := pipeline.ResultEvent{ID: pipeline.ResultID("c1", "", 1, pipeline.OutcomeSent), Campaign: "c1", App: app, UserID: 1,
		Platform: "ios", Token: "ab", Outcome: pipeline.OutcomeSent, AtMs: time.Now().UnixMilli()}
	if _, err := pipeline.Emit(t.Context(), b.rdb, pipeline.Message{Stream: b.keys.Stream(pipeline.StreamResults, 0), Fields: pipeline.ResultFields(ev)}); err != nil {
		t.Fatal(err)
	}
	row := func(body, group string) string {
		return regexp.MustCompile(`(?s)<tr data-receiver="` + group + `".*?</tr>`).FindString(body)
	}
	var body string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the pipeline page's receivers, last read:\n%s", regexp.MustCompile(`(?s)<table class="summary" id="receivers">.*?</table>`).FindString(body))
		}
	})
	pipelinetest.Eventually(t, 30*time.Second, "the page shows crm failing with its dead letter, analytics paused", func() bool {
		_, body = b.get("/ui/pipeline")
		return strings.Contains(row(body, "crm"), `<a href="/ui/deadletters?stream=results&amp;group=crm">1</a>`) &&
			strings.Contains(row(body, "crm"), `data-state="failing"`) && strings.Contains(row(body, "analytics"), `paused"`)
	})
	crm, analytics := html.UnescapeString(row(body, "crm")), html.UnescapeString(row(body, "analytics"))
	if !strings.Contains(crm, "Failing since ") || !strings.Contains(crm, "last error: ") || !strings.Contains(crm, "500") {
		t.Errorf("crm's row does not say it fails, since when, with its last error (500):\n%s", crm)
	}
	m := regexp.MustCompile(`Paused until <span class="when">(\S+ \S+) UTC</span>`).FindStringSubmatch(analytics)
	if m == nil {
		t.Fatalf("analytics' row does not say until when it is paused:\n%s", analytics)
	}
	until, err := time.Parse(time.DateTime, m[1])
	if err != nil {
		t.Fatal(err)
	}
	// 120 s asked, read some seconds later at most (the page rounds up).
	if left := time.Until(until); left < 60*time.Second || left > 121*time.Second {
		t.Errorf("analytics paused until %v, %v from now; want about the 120 s it asked for", until, left)
	}
	// Its 429 failed a delivery too (one attempt): both are said. Its
	// event waits for the pause, not dead-lettered.
	if !strings.Contains(row(body, "analytics"), `<td class="n dead">0</td>`) || strings.Contains(crm, "Paused") {
		t.Errorf("analytics, paused, reads with dead letters, or crm paused:\n%s\n%s", analytics, crm)
	}
	if keepArtifacts() {
		b.signIn()
		b.run(chromedp.Navigate(b.url+"/ui/pipeline"), waitJS(`document.getElementById("receivers") !== null`))
		b.screenshotAs("receivers.png")
	}
}

// TestCampaignFiguresAtAGlance: what the campaign pages say of a campaign
// at a glance.
//   - The new-campaign form offers the apps the API knows (a datalist):
//     its App was an empty field, to be typed from memory.
//   - A scheduled campaign's "Expected finish" keeps its date and time on
//     one line: in the list's narrow column, "starts 2026-12-07" was
//     broken from "15:04:05 UTC".
//   - A campaign canceled while split cut it says its targets are the
//     people counted by then ("≥ 3"), not its audience.
func TestCampaignFiguresAtAGlance(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	// The form, of the bed's one app.
	_, body := b.get("/ui/campaigns/new")
	input := regexp.MustCompile(`<input id="app"[^>]*>`).FindString(body)
	if !strings.Contains(input, `list="apps"`) || !strings.Contains(body, `<datalist id="apps"><option value="`+app+`"></datalist>`) {
		t.Errorf("the form's App, of the API's one app %s, is %s, want it offered", app, input)
	}
	// Of an API with two apps: both offered.
	two := httptest.NewServer(api.New(api.Config{Redis: b.rdb, DB: b.db, Keys: b.keys, Log: zerolog.Nop(),
		Auth: api.Auth{AdminToken: adminToken, AppKeys: map[string]string{app: appKey, "com.example.shop": "app-key-of-shop-0123456789"}}}))
	t.Cleanup(two.Close)
	b2 := *b
	b2.url, b2.session = two.URL, nil
	_, body = b2.get("/ui/campaigns/new")
	input = regexp.MustCompile(`<input id="app"[^>]*>`).FindString(body)
	if !strings.Contains(input, `list="apps"`) || !strings.Contains(body, `<datalist id="apps"><option value="com.example.news"><option value="com.example.shop"></datalist>`) {
		t.Errorf("the form's App, of two apps, is %s; want both offered:\n%s", input, body)
	}

	// Canceled mid-split: one range of three people out, split not done.
	b.create("cut", time.Time{})
	do := func(cmds ...rueidis.Completed) {
		for _, r := range b.rdb.DoMulti(t.Context(), cmds...) {
			if err := r.Error(); err != nil {
				t.Fatal(err)
			}
		}
	}
	do(b.rdb.B().Hset().Key(b.keys.RangeUsers("cut")).FieldValue().FieldValue("nobody/0.0", "3").Build(),
		b.rdb.B().Hset().Key(b.keys.Stats(1, "cut")).FieldValue().FieldValue(pipeline.StatIn, "3").FieldValue(pipeline.StatTargets, "3").Build())
	if _, err := campaign.Cancel(t.Context(), b.rdb, b.db, b.keys, "cut"); err != nil {
		t.Fatal(err)
	}
	_, body = b.get("/ui/campaigns")
	card := regexp.MustCompile(`(?s)<li class="card" data-campaign="cut".*?</li>`).FindString(body)
	if targets := regexp.MustCompile(`(?s)<dd class="targets">.*?</dd>`).FindString(card); !strings.Contains(html.UnescapeString(targets), "≥ 3") ||
		!strings.Contains(targets, "split stopped at cancel") {
		t.Errorf("the list's Targets of a campaign canceled mid-split: %s, want ≥ 3 and why", targets)
	}

	// Scheduled: its start's date and time on one line, in the list and
	// on its page.
	b.create("later", time.Now().Add(time.Hour))
	b.signIn()
	lines := `(() => {
		const root = document.querySelector('[data-campaign="later"]') || document.getElementById("live");
		const dt = root && [...root.querySelectorAll("dt")].find(e => e.textContent.trim() === "Expected finish");
		if (!dt) return -1;
		const dd = dt.nextElementSibling, walk = document.createTreeWalker(dd, NodeFilter.SHOW_TEXT), nodes = [];
		let text = "";
		while (walk.nextNode()) { nodes.push([walk.currentNode, text.length]); text += walk.currentNode.data; }
		const m = text.match(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/);
		if (!m) return -2;
		const at = off => { for (let i = nodes.length - 1; i >= 0; i--) if (off >= nodes[i][1]) return [nodes[i][0], off - nodes[i][1]]; };
		const r = document.createRange(), s = at(m.index), e = at(m.index + m[0].length - 1);
		r.setStart(s[0], s[1]); r.setEnd(e[0], e[1] + 1);
		return new Set([...r.getClientRects()].filter(x => x.width > 0).map(x => Math.round(x.top))).size;
	})()`
	for _, path := range []string{"/ui/campaigns", "/ui/campaigns/later"} {
		b.run(chromedp.Navigate(b.url+path), waitJS(`document.readyState === "complete"`))
		if n := js[int](b, lines); n != 1 {
			t.Errorf("%s: the scheduled start's date and time are on %d lines, want 1", path, n)
		}
		if keepArtifacts() {
			b.screenshotAs(strings.ReplaceAll(strings.TrimPrefix(path, "/ui/"), "/", "-") + ".png")
		}
	}
	if keepArtifacts() {
		b.run(chromedp.Navigate(b.url+"/ui/campaigns/new"), waitJS(`document.readyState === "complete"`))
		b.screenshotAs("new.png")
	}
}
