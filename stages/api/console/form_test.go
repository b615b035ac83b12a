package console_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/bench"
)

// TestFormRefusesWhatTheAPIRefuses: the new-campaign form refuses, before
// anything is stored, what POST /v1/campaigns refuses or what the form
// cannot mean, says what to type instead, and keeps what was typed. Each
// case here used to be created: a rate of 0 as no cap at all (full speed,
// the opposite of a cap), a rate over the API's 1,000,000 as given, a time
// to live of 0 as a day, and a send time picked while "now" was still
// chosen was ignored, so a campaign meant for later went out at once. A
// time to live too large to be a duration overflowed, and the refusal
// named a number nobody typed.
func TestFormRefusesWhatTheAPIRefuses(t *testing.T) {
	later := time.Now().UTC().Add(2 * time.Hour).Format("2006-01-02T15:04")
	farOff := time.Now().UTC().Add(100 * 24 * time.Hour).Format("2006-01-02T15:04")
	tests := []struct {
		name  string
		field string // the form field set, and kept after the refusal
		value string
		when  string
		says  string
	}{
		{"rate 0", "rate_per_second", "0", "now", "Rate: a whole number of sends per second from 1 to 1,000,000"},
		{"rate over the API's cap", "rate_per_second", "2000000", "now", "from 1 to 1,000,000"},
		{"time to live 0", "ttl_seconds", "0", "now", "Time to live: a whole number of seconds from 1 to 2,419,200"},
		{"time to live past a duration", "ttl_seconds", "99999999999", "now", "from 1 to 2,419,200"},
		{"a send time with now chosen", "send_at", later, "now", `choose "at" to send at that time, or clear the time`},
		// The model's refusals in the form's words: its labels, and a
		// channel list as the form takes it, where they said
		// "channels: …, e.g. [\"breaking-news\"]", brackets and quotes the
		// field then refused.
		{"no channel", "channels", " , ", "now", "Channels: at least one channel is required, e.g. breaking-news, sport"},
		{"data not an object", "data", "[1]", "now", "Data: must be a JSON object of custom keys"},
		{"a send time past 90 days", "send_at", farOff, "later", "Send at: at most 90 days ahead"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBed(t)
			// A real audience: what the form let through was created.
			if _, err := bench.Seed(t.Context(), b.dbURL, bench.SeedConfig{App: app, Users: 10, Channels: 1}); err != nil {
				t.Fatal(err)
			}
			_, page := b.get("/ui/campaigns/new")
			csrf := regexp.MustCompile(`name="csrf" value="([^"]*)"`).FindStringSubmatch(page)
			if csrf == nil {
				t.Fatalf("no csrf field in\n%s", page)
			}
			form := url.Values{"csrf": {csrf[1]}, "app": {app}, "channels": {"ch0"}, "title": {"Capped"},
				"ttl_seconds": {"86400"}, "when": {tt.when}, "id": {"form-case"}}
			form.Set(tt.field, tt.value)
			status, _, body := b.post("/ui/campaigns", form)
			body = html.UnescapeString(body)
			if status != http.StatusBadRequest || !strings.Contains(body, tt.says) {
				t.Errorf("%s=%q: %d, want 400 saying %q:\n%s", tt.field, tt.value, status, tt.says, body)
			}
			// An input's value, or a textarea's text.
			kept := regexp.MustCompile(`name="` + tt.field + `"([^>]*value="` + regexp.QuoteMeta(tt.value) + `"|[^>]*>` + regexp.QuoteMeta(tt.value) + `</textarea>)`)
			if !kept.MatchString(body) {
				t.Errorf("the refused form does not keep %s=%q", tt.field, tt.value)
			}
			var n int
			if err := b.db.QueryRow(t.Context(), `SELECT count(*) FROM campaigns`).Scan(&n); err != nil || n != 0 {
				t.Errorf("%d campaigns stored (%v), want none", n, err)
			}
		})
	}
}

// TestPickingATimeChoosesAt: picking a send time in the new-campaign form
// chooses "at", and the campaign is scheduled for that time. The radio
// beside the time stayed on "now": the campaign went out at once (the
// form now refuses that, TestFormRefusesWhatTheAPIRefuses, but an operator
// who picked a time had still to find the radio).
func TestPickingATimeChoosesAt(t *testing.T) {
	b := newBed(t)
	if _, err := bench.Seed(t.Context(), b.dbURL, bench.SeedConfig{App: app, Users: 10, Channels: 1}); err != nil {
		t.Fatal(err)
	}
	b.signIn()
	at := time.Now().UTC().Add(3 * time.Hour).Truncate(time.Minute)
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/new"),
		chromedp.SendKeys(chromedp.ID("app"), app),
		chromedp.SendKeys(chromedp.ID("channels"), "ch0"),
		chromedp.SendKeys(chromedp.ID("title"), "Tonight"),
		chromedp.SendKeys(chromedp.ID("cid"), "tonight"),
		// As the browser's picker does: a value, then an input event.
		waitJS(`(() => { const e = document.querySelector('input[name="send_at"]'); e.value = "`+at.Format("2006-01-02T15:04")+`";
			e.dispatchEvent(new Event("input", {bubbles: true})); return true })()`))
	if !js[bool](b, `document.querySelector('input[name="when"][value="later"]').checked`) {
		t.Error(`a send time was picked and "at" is not chosen`)
	}
	b.run(clickJS("#create"))
	b.within(30*time.Second, waitJS(`location.pathname === "/ui/campaigns/tonight"`))
	var sendAt *time.Time
	if err := b.db.QueryRow(t.Context(), `SELECT send_at FROM campaigns WHERE id = 'tonight'`).Scan(&sendAt); err != nil {
		t.Fatal(err)
	}
	if sendAt == nil || !sendAt.Equal(at) {
		t.Errorf("the campaign's send_at is %v, want %v", sendAt, at)
	}
}
