package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/bench"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/api"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
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
	t.Parallel()
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
			t.Parallel()
			b := newHTTPBed(t)
			// A real audience: what the form let through was created.
			if _, err := bench.Seed(t.Context(), b.dbURL, bench.SeedConfig{App: app, Users: 10, Channels: 1}); err != nil {
				t.Fatal(err)
			}
			_, page := b.get("/ui/campaigns/new")
			csrf := formCSRF(t, page)
			form := url.Values{"csrf": {csrf}, "app": {app}, "channels": {"ch0"}, "title": {"Capped"},
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
	t.Parallel()
	b := newBed(t)
	if _, err := bench.Seed(t.Context(), b.dbURL, bench.SeedConfig{App: app, Users: 10, Channels: 1}); err != nil {
		t.Fatal(err)
	}
	b.signIn()
	b.run(func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Seoul"})
		return chromedp.Void{}, err
	})
	at := time.Now().UTC().Add(3 * time.Hour).Truncate(time.Minute)
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/new"),
		fillApp(app),
		chromedp.SendKeys(chromedp.ID("channels"), "ch0"),
		chromedp.SendKeys(chromedp.ID("title"), "Tonight"),
		chromedp.SendKeys(chromedp.ID("cid"), "tonight"),
		// As the browser's picker does: a value, then an input event.
		waitJS(`(() => { const e = document.querySelector('input[name="send_at"]'); e.value = "`+at.Format("2006-01-02T15:04")+`";
			e.dispatchEvent(new Event("input", {bubbles: true})); return true })()`))
	if !js[bool](b, `document.querySelector('input[name="when"][value="later"]').checked`) {
		t.Error(`a send time was picked and "at" is not chosen`)
	}
	// Beside it, the time typed (UTC) in the browser's zone, Seoul's here:
	// nothing said what 09:00 UTC was where the operator sat.
	seoul := at.In(time.FixedZone("KST", 9*3600)).Format("2006-01-02 15:04")
	// (How long until then is not checked: it depends on the clock.)
	if got, want := b.text("#send-at-local"), "That is "+seoul+" your time (Asia/Seoul, UTC+09:00), in "; !strings.HasPrefix(got, want) {
		t.Errorf("beside the send time: %q, want it to start %q", got, want)
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

// TestFormSetsTheNotificationObject: the new-campaign form sets the
// notification object's fields an operator needs, and the campaign's
// priority, checked by the API's own parser (api.ParseNotification): what
// it stores is what POST /v1/campaigns stores for the same object, and what
// the API refuses the form refuses, by the form's label, keeping what was
// typed. The form had title, body and data only: a breaking-news alert at
// priority high, with an image, a subtitle, a sound or a badge, or a silent
// push, could not be sent from the console; the fields a crafted post
// carried were ignored, and the campaign went out plain, at normal
// priority.
func TestFormSetsTheNotificationObject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		fields   url.Values // the form's fields beyond app, channels and the rest
		object   string     // the same notification as POST /v1/campaigns takes it ("" when refused)
		priority string     // the request's priority for it
		says     string     // the refusal ("" when created)
	}{
		{
			name: "breaking news at high priority",
			fields: url.Values{"priority": {"high"}, "title": {"Breaking"}, "subtitle": {"Election night"}, "body": {"Results are in"},
				"image": {"https://cdn.example.com/map.png"}, "sound": {"alert.caf"}, "badge": {"3"}},
			object:   `{"title":"Breaking","subtitle":"Election night","body":"Results are in","image":"https://cdn.example.com/map.png","sound":"alert.caf","badge":3}`,
			priority: "high",
		},
		{
			name: "thread, collapse id and data",
			fields: url.Values{"priority": {"normal"}, "title": {"Score"}, "thread_id": {"match-12"}, "collapse_id": {"score-12"},
				"badge": {"0"}, "data": {`{"match": 12}`}},
			object:   `{"title":"Score","thread_id":"match-12","collapse_id":"score-12","badge":0,"data":{"match":12}}`,
			priority: "normal",
		},
		{
			name:   "silent with data only",
			fields: url.Values{"silent": {"1"}, "data": {`{"sync": "inbox"}`}},
			object: `{"silent":true,"data":{"sync":"inbox"}}`,
		},
		{
			name:   "silent with a title",
			fields: url.Values{"silent": {"1"}, "title": {"Shown?"}, "data": {`{"sync": "inbox"}`}},
			says:   `Title: a silent push shows nothing; remove it or untick "Silent"`,
		},
		{
			name:   "silent with a sound",
			fields: url.Values{"silent": {"1"}, "sound": {"default"}},
			says:   `Sound: a silent push shows nothing`,
		},
		{
			name:   "an image over http",
			fields: url.Values{"title": {"Look"}, "image": {"http://cdn.example.com/map.png"}},
			says:   "Image URL: must be an https:// URL",
		},
		{
			name:   "a badge of -1",
			fields: url.Values{"title": {"Count"}, "badge": {"-1"}},
			says:   "Badge: must be between 0 (clears the badge) and 2147483647, got -1",
		},
		{
			name:   "a badge that is no number",
			fields: url.Values{"title": {"Count"}, "badge": {"three"}},
			says:   "Badge: a whole number",
		},
		{
			name:   "a priority the API does not know",
			fields: url.Values{"title": {"Now"}, "priority": {"urgent"}},
			says:   `Priority: must be "normal" or "high", got "urgent"`,
		},
		{
			name: "texts in other languages",
			fields: url.Values{"title": {"Breaking"}, "body": {"Results are in"},
				"localized": {` {"ko": {"title": "속보", "body": "결과"}, "pt-BR": {"title": "Urgente"}} `}},
			object: `{"title":"Breaking","body":"Results are in","localized":{"ko":{"title":"속보","body":"결과"},"pt-BR":{"title":"Urgente"}}}`,
		},
		{
			name:   "a language tag the API refuses",
			fields: url.Values{"title": {"Breaking"}, "localized": {`{"pt_BR": {"title": "Urgente"}}`}},
			says:   `Localized.pt_BR: the key must be a BCP 47 language tag such as "ko" or "pt-BR"`,
		},
		{
			name:   "localized texts that are no JSON object",
			fields: url.Values{"title": {"Breaking"}, "localized": {`ko: 속보`}},
			says:   "Localized: must be a JSON object of texts by language tag",
		},
		{
			// Said in the API's parser's words, Go's: "cannot unmarshal
			// JSON string into Go api.textRequest", under "Title and body".
			name:   "a language's text that is no object",
			fields: url.Values{"title": {"Breaking"}, "localized": {`{"ko": "속보"}`}},
			says:   `Localized: "ko" must be an object of its title, subtitle and body, e.g. {"ko": {"title": "…", "body": "…"}}; got "속보"`,
		},
		{
			// By its name, as typed: "Channels[1]: has only …" had the
			// operator count the list from 0.
			name:   "a channel name the model refuses",
			fields: url.Values{"title": {"Breaking"}, "channels": {"ch0, sport news"}},
			says:   `Channel "sport news": has only A-Z a-z 0-9 _ . : - characters; character 6 is ' '`,
		},
		{
			name:   "a collapse id too long",
			fields: url.Values{"title": {"Once"}, "collapse_id": {strings.Repeat("c", 65)}},
			says:   "Collapse id: must be at most 64 printable bytes",
		},
	}
	// One bed for every case, each its own campaign id: a bed each was a
	// database and an API started per case, most of the test's time.
	bed := newHTTPBed(t)
	_, page := bed.get("/ui/campaigns/new")
	csrf := formCSRF(t, page)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := bed.on(t)
			id := fmt.Sprintf("note-%d", i)
			form := url.Values{"csrf": {csrf}, "app": {app}, "channels": {"ch0"}, "ttl_seconds": {"86400"},
				"when": {"now"}, "id": {id}, "allow_empty": {"1"}}
			for k, v := range tt.fields {
				form[k] = v
			}
			status, _, body := b.post("/ui/campaigns", form)
			body = html.UnescapeString(body)
			stored, err := campaign.Load(t.Context(), b.db, id)
			if tt.says != "" {
				if status != http.StatusBadRequest || !strings.Contains(body, tt.says) {
					t.Errorf("%d, want 400 saying %q:\n%s", status, tt.says, body)
				}
				if !errors.Is(err, campaign.ErrNotFound) {
					t.Errorf("a refused form stored campaign %+v (%v)", stored, err)
				}
				for name, v := range tt.fields {
					if name == "priority" && v[0] != "normal" && v[0] != "high" {
						continue // a crafted post: no radio of the form shows it
					}
					if !keeps(body, name, v[0]) {
						t.Errorf("the refused form does not keep %s=%q", name, v[0])
					}
				}
				return
			}
			if status != http.StatusSeeOther {
				t.Fatalf("%d, want 303 to the campaign:\n%s", status, body)
			}
			if err != nil {
				t.Fatal(err)
			}
			want, err := api.ParseNotification([]byte(tt.object), tt.priority, push.PriorityNormal)
			if err != nil {
				t.Fatalf("the API refuses %s: %v", tt.object, err)
			}
			wantJSON, err := json.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(stored.Notification, wantJSON) {
				t.Errorf("stored notification\n%s\nwant what the API stores\n%s", stored.Notification, wantJSON)
			}
			if stored.Priority != want.Priority || stored.Title != want.Title || stored.Body != want.Body || !sameJSON(stored.Data, want.Data) {
				t.Errorf("stored priority %q title %q body %q data %s, want %q %q %q %s", stored.Priority, stored.Title, stored.Body, stored.Data,
					want.Priority, want.Title, want.Body, want.Data)
			}
		})
	}
}

// TestFormSendsANotificationFromTheBrowser: an operator fills the new
// fields in the real browser (the less-used ones under "More"), sees them in
// the preview, and creates a high-priority campaign whose notification is
// what the API stores for the same object.
func TestFormSendsANotificationFromTheBrowser(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	if _, err := bench.Seed(t.Context(), b.dbURL, bench.SeedConfig{App: app, Users: 10, Channels: 1}); err != nil {
		t.Fatal(err)
	}
	b.signIn()
	b.run(chromedp.Navigate(b.url + "/ui/campaigns/new"))
	// Within a bound: the old form had none of these fields.
	b.within(30*time.Second,
		fillApp(app),
		chromedp.SendKeys(chromedp.ID("channels"), "ch0"),
		chromedp.SendKeys(chromedp.ID("title"), "Breaking"),
		chromedp.SendKeys(chromedp.ID("body"), "Results are in"),
		chromedp.SendKeys(chromedp.ID("cid"), "breaking-1"),
		clickJS(`input[name="priority"][value="high"]`),
		clickJS("#more summary"),
		waitJS(`document.getElementById("more").open`),
		chromedp.SendKeys(chromedp.ID("subtitle"), "Election night"),
		chromedp.SendKeys(chromedp.ID("image"), "https://cdn.example.com/map.png"),
		chromedp.SendKeys(chromedp.ID("sound"), "alert.caf"),
		chromedp.SendKeys(chromedp.ID("badge"), "3"),
		chromedp.SendKeys(chromedp.ID("thread-id"), "election"),
		chromedp.SendKeys(chromedp.ID("collapse-id"), "results"),
		chromedp.SendKeys(chromedp.ID("localized"), `{"de": {"title": "Eilmeldung"}}`),
		// The preview follows the new fields.
		waitJS(`document.querySelector('.ios [data-preview="subtitle"]').textContent === "Election night" &&
			JSON.parse(document.querySelector('[data-preview="apns"]').textContent).image === "https://cdn.example.com/map.png" &&
			JSON.parse(document.querySelector('[data-preview="apns"]').textContent).aps.badge === 3 &&
			JSON.parse(document.querySelector('[data-preview="fcm"]').textContent).message.android.priority === "high" &&
			document.querySelector('[data-preview="languages"]').textContent.includes("Devices in de get their own")`),
	)
	b.run(clickJS("#create"), waitJS(`location.pathname === "/ui/campaigns/breaking-1" && document.querySelector("p.notice") !== null`))
	stored, err := campaign.Load(t.Context(), b.db, "breaking-1")
	if err != nil {
		t.Fatal(err)
	}
	want, err := api.ParseNotification([]byte(`{"title":"Breaking","subtitle":"Election night","body":"Results are in",
		"image":"https://cdn.example.com/map.png","sound":"alert.caf","badge":3,"thread_id":"election","collapse_id":"results",
		"localized":{"de":{"title":"Eilmeldung"}}}`), "high", push.PriorityNormal)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, _ := json.Marshal(want)
	if stored.Priority != "high" || !sameJSON(stored.Notification, wantJSON) {
		t.Errorf("stored priority %q, notification\n%s\nwant high and\n%s", stored.Priority, stored.Notification, wantJSON)
	}
}

// keeps reports whether a re-rendered form holds value in its field name:
// an input's value, a textarea's text, a checked radio or box.
func keeps(body, name, value string) bool {
	q := regexp.QuoteMeta
	return regexp.MustCompile(`name="`+q(name)+`"[^>]*value="`+q(value)+`"`+`|`+
		`name="`+q(name)+`"[^>]*>`+q(value)+`</textarea>`).MatchString(body) &&
		(name != "priority" && name != "silent" || regexp.MustCompile(`name="`+q(name)+`" value="`+q(value)+`"[^>]*checked`).MatchString(body))
}

// sameJSON reports whether two JSON texts are the same value (PostgreSQL's
// jsonb keeps neither spacing nor key order).
func sameJSON(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}
