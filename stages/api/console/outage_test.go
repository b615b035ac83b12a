package console_test

import (
	"context"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/api"
)

// within runs browser actions in the tab under a bound of their own: a wait
// the old code can never satisfy fails in d, not in waitJS's minutes.
func (b *bed) within(d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, d)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatal(err)
	}
}

// TestLiveOutage: when Redis or PostgreSQL stops answering under an open
// campaign page, its live part says so in place of the figures, at the next
// refresh. htmx leaves a region alone on an error status by default, so the
// page used to keep showing the last figures, silently, as if they were
// current: an operator watching a launch would take a stalled page for a
// stalled campaign (or the reverse).
func TestLiveOutage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fail  func(b *bed)
		alert string // what the live part says instead of the figures
	}{
		// A closed pool is PostgreSQL failing so that Redis cannot stand
		// in (campaign.outage): a server that refuses us instead shows the
		// page from Redis under a notice (TestLaunchWithPostgresDown).
		{"PostgreSQL down", func(b *bed) { b.db.Close() }, "Campaign o1 is unavailable"},
		// The session is read from Redis first, on every refresh.
		{"Redis down", func(b *bed) { b.rdb.Close() }, "Redis did not answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t)
			b.expect("status of 503") // the refreshes the outage fails
			if _, _, err := campaign.Create(t.Context(), b.rdb, b.db, b.keys, campaign.Campaign{ID: "o1", App: app, Channels: []string{"nobody"}, Title: "Outage"}); err != nil {
				t.Fatal(err)
			}
			b.signIn()
			b.run(chromedp.Navigate(b.url+"/ui/campaigns/o1"), waitJS(`document.getElementById("state") !== null`))
			tt.fail(b)
			b.within(30*time.Second, waitJS(fmt.Sprintf(`(() => { const a = document.querySelector("#live [role=alert]");
				return a !== null && a.textContent.includes(%q) && document.getElementById("state") === null &&
					document.querySelector("#live progress") === null && document.querySelector("#live html, #live header") === null })()`, tt.alert)))
		})
	}
}

// TestUnreadableIsNotEmpty: a list or a count the console could not read
// shows the error and nothing else. It used to show, under the error, the
// empty state of what it failed to read: "No campaigns yet", "Dead
// letters: 0", "0 dead letters in all"; in an outage the operator is told
// the campaigns are gone or the pipeline is clean.
func TestUnreadableIsNotEmpty(t *testing.T) {
	t.Parallel()
	pgDown := func(b *bed) { b.db.Close() }
	// The dead-letter stream unreadable while the sessions still are (on
	// a cluster they are on different nodes): a value of the wrong type
	// at its key.
	dlqDown := func(b *bed) {
		if err := b.rdb.Do(b.t.Context(), b.rdb.B().Set().Key(b.keys.DLQ()).Value("x").Build()).Error(); err != nil {
			b.t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		path  string
		fail  func(b *bed)
		alert string
		empty []string // what the page must not claim
	}{
		{"campaigns", "/ui/campaigns", pgDown, "The campaign list is unavailable", []string{"No campaigns yet", `id="campaign-list"`}},
		{"campaign rows", "/ui/campaigns/rows", pgDown, "The campaign list is unavailable", []string{"No campaigns yet", `id="campaign-list"`}},
		{"messages", "/ui/messages", pgDown, "The message list is unavailable", []string{"No direct messages yet", `id="message-list"`}},
		{"message rows", "/ui/messages/rows", pgDown, "The message list is unavailable", []string{"No direct messages yet", `id="message-list"`}},
		{"pipeline", "/ui/pipeline", dlqDown, "Pipeline status is unavailable", []string{"Dead letters:", `id="dlq-depth"`}},
		{"pipeline live", "/ui/pipeline/live", dlqDown, "Pipeline status is unavailable", []string{"Dead letters:", `id="dlq-depth"`}},
		{"dead letters", "/ui/deadletters", dlqDown, "The dead letters are unavailable", []string{"dead letters in all", "No dead letters."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newHTTPBed(t)
			tt.fail(b)
			_, body := b.get(tt.path)
			if !strings.Contains(body, tt.alert) {
				t.Errorf("%s does not say %q:\n%s", tt.path, tt.alert, body)
			}
			// Once: a list's page said it in the layout and in its live
			// part, and the layout's stayed after the outage.
			if n := strings.Count(body, `role="alert"`); n != 1 {
				t.Errorf("%s says it %d times, want once:\n%s", tt.path, n, body)
			}
			for _, e := range tt.empty {
				if strings.Contains(body, e) {
					t.Errorf("%s, unreadable, still shows %q", tt.path, e)
				}
			}
		})
	}
}

// TestUnavailableSaysWhatNext: a part the console could not read says what
// comes next: a part that refreshes itself says it tries again every
// second, a page that does not says to reload it, and a server that did not
// answer in time is named as such. The sentences stopped at the error
// ("load campaign \"o1\": context deadline exceeded"): whether to wait, to
// reload, or which server had stalled, the operator could not tell.
func TestUnavailableSaysWhatNext(t *testing.T) {
	t.Parallel()
	const (
		tries  = "This part tries again every second."
		reload = "Reload the page in a moment."
	)
	// A closed pool: PostgreSQL failing so that Redis cannot stand in
	// (campaign.outage). A refused connection shows a campaign's and a
	// message's page from Redis instead (TestLaunchWithPostgresDown); the
	// lists fail either way.
	pgDown := func(b *bed) string { b.db.Close(); return b.url }
	dlqDown := func(b *bed) string {
		if err := b.rdb.Do(b.t.Context(), b.rdb.B().Set().Key(b.keys.DLQ()).Value("x").Build()).Error(); err != nil {
			b.t.Fatal(err)
		}
		return b.url
	}
	// A PostgreSQL that takes the connection and never answers: the
	// console's own API of the same Redis (sessions included) over it.
	pgSilent := func(b *bed) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.t.Fatal(err)
		}
		b.t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				b.t.Cleanup(func() { c.Close() })
			}
		}()
		db, err := pgxpool.New(b.t.Context(), "postgres://pushpipe@"+l.Addr().String()+"/pushpipe?sslmode=disable")
		if err != nil {
			b.t.Fatal(err)
		}
		b.t.Cleanup(db.Close)
		srv := httptest.NewServer(api.New(api.Config{Redis: b.rdb, DB: db, Keys: b.keys, Log: zerolog.Nop(),
			Auth: api.Auth{AdminToken: adminToken, AppKeys: map[string]string{app: appKey}}}))
		b.t.Cleanup(srv.Close)
		return srv.URL
	}
	tests := []struct {
		name string
		fail func(b *bed) string // the console's URL to ask
		path string
		hx   bool // asked as htmx's refresh of a live part
		says []string
	}{
		{"campaign list", pgDown, "/ui/campaigns", false, []string{"The campaign list is unavailable", tries}},
		{"campaign list refresh", pgDown, "/ui/campaigns/rows", true, []string{"The campaign list is unavailable", tries}},
		{"campaign page", pgDown, "/ui/campaigns/o1", false, []string{"Campaign o1 is unavailable", reload}},
		{"campaign page refresh", pgDown, "/ui/campaigns/o1/live", true, []string{"Campaign o1 is unavailable", tries}},
		{"message page", pgDown, "/ui/messages/m1", false, []string{"Message m1 is unavailable", reload}},
		{"message list", pgDown, "/ui/messages", false, []string{"The message list is unavailable", tries}},
		{"pipeline", dlqDown, "/ui/pipeline", false, []string{"Pipeline status is unavailable", tries}},
		{"dead letters", dlqDown, "/ui/deadletters", false, []string{"The dead letters are unavailable", reload}},
		{"campaign list, PostgreSQL silent", pgSilent, "/ui/campaigns", false,
			[]string{"The campaign list is unavailable", "Redis or PostgreSQL did not answer within 5s. " + tries}},
		// A page of one campaign waits for PostgreSQL 2 s, then shows what
		// Redis holds (as it does when PostgreSQL refuses).
		{"campaign page, PostgreSQL silent", pgSilent, "/ui/campaigns/o1", false,
			[]string{`id="record-unavailable">` + campaign.RecordUnavailable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newHTTPBed(t)
			if _, _, err := campaign.Create(t.Context(), b.rdb, b.db, b.keys, campaign.Campaign{ID: "o1", App: app, Channels: []string{"nobody"}, Title: "Outage"}); err != nil {
				t.Fatal(err)
			}
			b.get("/ui/campaigns") // signs in while everything answers
			base := tt.fail(b)
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+tt.path, nil)
			if tt.hx {
				req.Header.Set("HX-Request", "true")
			}
			_, body := b.do(req)
			body = html.UnescapeString(body)
			for _, want := range tt.says {
				if !strings.Contains(body, want) {
					t.Errorf("%s does not say %q:\n%s", tt.path, want, body)
				}
			}
		})
	}
}

// TestUnavailableHidesTheError: a part, a cancel or a retry that failed says
// in plain words which server failed, what to do, and the reference under
// which the API logged the error, never the error itself: pages showed
// Redis's and PostgreSQL's own words ("WRONGTYPE Operation against a key
// holding the wrong kind of value", a dial error naming a host and port).
// The same failure again keeps its reference and is logged once.
func TestUnavailableHidesTheError(t *testing.T) {
	t.Parallel()
	// A value of the wrong type at a key the part reads: Redis answers
	// WRONGTYPE, while the sessions still work.
	wrongType := func(key func(b *bed) []string) func(b *bed) {
		return func(b *bed) {
			for _, k := range key(b) {
				if err := b.rdb.Do(b.t.Context(), b.rdb.B().Set().Key(k).Value("x").Build()).Error(); err != nil {
					b.t.Fatal(err)
				}
			}
		}
	}
	dlq := wrongType(func(b *bed) []string { return []string{b.keys.DLQ()} })
	delayed := wrongType(func(b *bed) []string {
		var keys []string
		for p := range b.keys.Partitions {
			keys = append(keys, pipeline.DelayedKey(b.keys.Stream(pipeline.StreamCampaigns, p)))
		}
		return keys
	})
	tests := []struct {
		name   string
		setup  func(b *bed)
		method string
		path   string
		says   string
	}{
		{"dead letters", dlq, "GET", "/ui/deadletters", "The dead letters are unavailable: Redis failed. Reload the page in a moment."},
		{"pipeline", dlq, "GET", "/ui/pipeline", "Pipeline status is unavailable: Redis failed. This part tries again every second."},
		{"cancel", func(b *bed) { b.create("c1", time.Now().Add(time.Hour)); delayed(b) }, "POST", "/ui/campaigns/c1/cancel",
			"Not canceled: Redis failed. Try again in a moment: canceling twice is safe."},
		// Redis refuses the re-injection alone: the letter's own failure
		// (pipeline.DLQResult.Failed) carried Redis's words to the page.
		{"retry", func(b *bed) {
			if err := b.rdb.Do(b.t.Context(), b.rdb.B().Xadd().Key(b.keys.DLQ()).Id("1-1").FieldValue().
				FieldValue(pipeline.DLQStream, b.keys.Stream(pipeline.StreamDeliver, 0)).FieldValue(pipeline.DLQID, "1-0").
				FieldValue(pipeline.DLQError, "payload rejected").
				FieldValue(pipeline.DLQFields, pipeline.EncodeDLQFields(map[string]string{pipeline.FieldCampaign: "c1"})).Build()).Error(); err != nil {
				b.t.Fatal(err)
			}
			wrongType(func(b *bed) []string { return []string{b.keys.Stream(pipeline.StreamDeliver, 0)} })(b)
		}, "POST", "/ui/deadletters/1-1/retry", "Not retried: Redis failed. Try again in a moment."},
	}
	ref := regexp.MustCompile(`the API's log has the error under ref ([0-9a-f]{8}) \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newHTTPBed(t)
			tt.setup(b)
			var body string
			if tt.method == "POST" {
				_, form := b.get("/ui/campaigns/new")
				csrf := formCSRF(t, form)
				_, _, body = b.post(tt.path, url.Values{"csrf": {csrf}})
			} else {
				_, body = b.get(tt.path)
			}
			body = html.UnescapeString(body)
			if !strings.Contains(body, tt.says) {
				t.Errorf("%s does not say %q:\n%s", tt.path, tt.says, body)
			}
			if strings.Contains(body, "WRONGTYPE") {
				t.Errorf("%s shows Redis's error:\n%s", tt.path, body)
			}
			m := ref.FindStringSubmatch(body)
			if m == nil {
				t.Fatalf("%s gives no reference to the log:\n%s", tt.path, body)
			}
			logged := false
			for _, line := range strings.Split(b.logs.String(), "\n") {
				logged = logged || strings.Contains(line, `"ref":"`+m[1]+`"`) && strings.Contains(line, "WRONGTYPE")
			}
			if !logged {
				t.Errorf("no log line with ref %s and the error:\n%s", m[1], b.logs.String())
			}
			if tt.method != "GET" {
				return
			}
			// Asked again (every open page polls once a second): the same
			// reference, and no second log line.
			_, again := b.get(tt.path)
			if m2 := ref.FindStringSubmatch(html.UnescapeString(again)); m2 == nil || m2[0] != m[0] {
				t.Errorf("asked again: %v, want the same reference %q", m2, m[0])
			}
			if n := strings.Count(b.logs.String(), `"ref":"`+m[1]+`"`); n != 1 {
				t.Errorf("ref %s logged %d times, want once:\n%s", m[1], n, b.logs.String())
			}
		})
	}
}
