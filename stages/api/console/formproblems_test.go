package console_test

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// problemAt is the problem the refused form page says at its field id
// (new.html's "problem"), "" for none.
func problemAt(page, id string) string {
	m := regexp.MustCompile(`<p class="error field-problem" id="` + regexp.QuoteMeta(id) + `-problem">([^<]*)</p>`).FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// TestFormSaysEveryProblemAtItsField: a refused new-campaign form says every
// problem it has at once, each under its field (and the field marked
// invalid), not the first one alone: an empty form was refused for its
// title and body, then, filled in, for its channels, then its app, a post
// at a time.
func TestFormSaysEveryProblemAtItsField(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	_, page := b.get("/ui/campaigns/new")
	csrf := formCSRF(t, page)
	// The browser's own check of required fields stops at the first
	// (App), a bubble at a time: the server's answer says them all.
	if !strings.Contains(page, `<form method="post" action="/ui/campaigns" class="stack" id="new-campaign" novalidate>`) {
		t.Error("the form is checked by the browser first, one field at a time")
	}
	tests := []struct {
		name string
		give url.Values
		want map[string]string // field id: the start of its problem
	}{
		{"empty", url.Values{"app": {""}, "channels": {""}, "title": {""}, "body": {""}},
			map[string]string{"app": "App: ", "channels": "Channels: at least one channel", "title": "Title and body: a title or a body is required"}},
		{"numbers", url.Values{"badge": {"many"}, "ttl_seconds": {"0"}, "rate_per_second": {"-1"}},
			map[string]string{"badge": "Badge: a whole number", "ttl": "Time to live: a whole number", "rate": "Rate: a whole number"}},
		{"a time in no format", url.Values{"channels": {""}, "when": {"later"}, "send_at": {"tomorrow"}},
			map[string]string{"channels": "Channels: ", "send-at": "Send at: a date and time in UTC"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"csrf": {csrf}, "app": {app}, "channels": {"ch0"}, "title": {"Hello"}, "ttl_seconds": {"86400"},
				"when": {"now"}, "priority": {"normal"}, "allow_empty": {"1"}}
			for k, v := range tt.give {
				form[k] = v
			}
			status, _, body := b.on(t).post("/ui/campaigns", form)
			if status != http.StatusBadRequest {
				t.Fatalf("%d, want 400:\n%s", status, body)
			}
			for id, want := range tt.want {
				if got := problemAt(body, id); !strings.HasPrefix(got, want) {
					t.Errorf("at %s the form says %q, want %q…", id, got, want)
				}
				if !strings.Contains(body, `id="`+id+`"`) || !regexp.MustCompile(`id="`+id+`"[^>]*aria-invalid="true" aria-describedby="`+id+`-problem"`).MatchString(body) {
					t.Errorf("field %s is not marked invalid, described by its problem", id)
				}
			}
			// Above the form: how many, and where (each said at its field).
			if top := regexp.MustCompile(`<p class="error" role="alert">([^<]*)</p>`).FindStringSubmatch(body); top == nil ||
				!strings.HasPrefix(html.UnescapeString(top[1]), fmt.Sprintf("Not created: %d problems. Each is said at its field: ", len(tt.want))) {
				t.Errorf("above the form: %q, want how many problems and their fields", top)
			}
			if n := strings.Count(body, `class="error field-problem"`); n != len(tt.want) {
				t.Errorf("%d problems at fields, want %d", n, len(tt.want))
			}
		})
	}
}

// TestSendAtIsTypedAsTheConsoleWritesTimes: the form's send time is typed as
// the console writes times, in UTC, said beside the field with the time it
// is in UTC; the campaign is then scheduled for that time and its page says
// it in the same words. The field was a datetime-local, which the browser
// shows in its locale (12/07/2026, 03:04 PM) beside pages that say
// 2026-12-07 15:04:05 UTC, and its times refused what the console shows.
func TestSendAtIsTypedAsTheConsoleWritesTimes(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	_, page := b.get("/ui/campaigns/new")
	field := regexp.MustCompile(`<input [^>]*name="send_at"[^>]*>`).FindString(page)
	if !strings.Contains(field, `type="text"`) || !regexp.MustCompile(`placeholder="\d{4}-\d\d-\d\d \d\d:\d\d"`).MatchString(field) {
		t.Errorf("the send time field is %s, want a text field with a time as the console writes it as its placeholder", field)
	}
	if hint := regexp.MustCompile(`id="send-at-hint">([^\n]*)</span>`).FindStringSubmatch(page); hint == nil ||
		!regexp.MustCompile(`^UTC, .* it is \d{4}-\d\d-\d\d \d\d:\d\d UTC now$`).MatchString(hint[1]) {
		t.Errorf("the hint beside the send time is %q, want it to say UTC and the time it is there", hint)
	}
	at := time.Now().UTC().Add(5 * time.Hour).Truncate(time.Minute)
	tests := []struct {
		name string
		give string
	}{
		{"to the minute", at.Format("2006-01-02 15:04")},
		{"copied from a page of the console", at.Format("2006-01-02 15:04:05 UTC")},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "at-" + string(rune('a'+i))
			form := url.Values{"csrf": {formCSRF(t, page)}, "app": {app}, "channels": {"ch0"}, "title": {"Tonight"}, "ttl_seconds": {"86400"},
				"when": {"later"}, "send_at": {tt.give}, "priority": {"normal"}, "allow_empty": {"1"}, "id": {id}}
			c := b.on(t)
			status, loc, body := c.post("/ui/campaigns", form)
			if status != http.StatusSeeOther || !strings.HasPrefix(loc, "/ui/campaigns/"+id) {
				t.Fatalf("send_at %q: %d to %q, want 303 to the campaign:\n%s", tt.give, status, loc, body)
			}
			_, body = c.get("/ui/campaigns/" + id)
			if want := "Scheduled for " + at.Format("2006-01-02 15:04:05 UTC"); !strings.Contains(html.UnescapeString(stripTags(body)), want) {
				t.Errorf("send_at %q: the campaign's page does not say %q", tt.give, want)
			}
		})
	}
	// A time past the model's bound is said as the console writes times,
	// not as RFC 3339 (the API's words, for what the API takes).
	far := time.Now().UTC().Add(100 * 24 * time.Hour).Truncate(time.Minute)
	form := url.Values{"csrf": {formCSRF(t, page)}, "app": {app}, "channels": {"ch0"}, "title": {"Far"}, "ttl_seconds": {"86400"},
		"when": {"later"}, "send_at": {far.Format("2006-01-02 15:04")}, "priority": {"normal"}, "allow_empty": {"1"}}
	_, _, body := b.post("/ui/campaigns", form)
	got := problemAt(body, "send-at")
	if !regexp.MustCompile(`^Send at: at most 90 days ahead \(until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\), got ` + regexp.QuoteMeta(far.Format("2006-01-02 15:04:05 UTC")) + `$`).MatchString(got) {
		t.Errorf("past 90 days the form says %q, want the times as the console writes them", got)
	}
}

// stripTags is a page's text, tags removed (a time is wrapped in a span).
func stripTags(page string) string { return regexp.MustCompile(`<[^>]*>`).ReplaceAllString(page, "") }
