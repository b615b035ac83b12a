package console_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/bench"
)

// newCampaignForm is the fields of a campaign the new-campaign form posts,
// with the CSRF token of a form served to b.get's session.
func newCampaignForm(b *bed, id, channels string) url.Values {
	b.t.Helper()
	_, page := b.get("/ui/campaigns/new")
	csrf := formCSRF(b.t, page)
	return url.Values{"csrf": {csrf}, "id": {id}, "app": {app}, "channels": {channels},
		"title": {"Hello"}, "ttl_seconds": {"86400"}, "when": {"now"}}
}

// TestEmptyChannelsInTheFormsWords: a channel nobody subscribed to is
// refused in the form's words, its names as the field takes them. The
// refusal said `channels ["nope"] have no subscribers`: Go's quoting of a
// list, which a new operator read as brackets to type into the field.
func TestEmptyChannelsInTheFormsWords(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	if _, err := bench.Seed(t.Context(), b.dbURL, bench.SeedConfig{App: app, Users: 10, Channels: 1}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		give string
		want string
	}{
		{"ch0, nope", `Channel "nope" has no subscribers: nobody would receive this campaign`},
		{"nope, ch0, gone", `Channels "nope", "gone" have no subscribers: nobody would receive this campaign`},
	}
	for _, tt := range tests {
		status, _, body := b.post("/ui/campaigns", newCampaignForm(b, "empty", tt.give))
		body = html.UnescapeString(body)
		if status != http.StatusBadRequest || !strings.Contains(body, tt.want) || strings.Contains(body, `["`) {
			t.Errorf("channels %q: %d, want 400 saying %q, without brackets:\n%s", tt.give, status, tt.want, body)
		}
	}
}

// TestCampaignPageFiguresFirst: a campaign's page shows its state, bar and
// counts within a laptop's first screen, its rate cap on one line below
// them. The cap's form came first, three lines of label, full-width field
// and button, and pushed the figures an operator opens the page for down
// past the Cancel button, half out of view.
func TestCampaignPageFiguresFirst(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	if _, err := bench.Seed(t.Context(), b.dbURL, bench.SeedConfig{App: app, Users: 10, Channels: 1}); err != nil {
		t.Fatal(err)
	}
	// Scheduled: open (its cap can be set) and still, with no pipeline.
	form := newCampaignForm(b, "later", "ch0")
	form.Set("when", "later")
	form.Set("send_at", time.Now().UTC().Add(2*time.Hour).Format("2006-01-02T15:04"))
	if status, loc, body := b.post("/ui/campaigns", form); status != http.StatusSeeOther {
		t.Fatalf("create: %d %s\n%s", status, loc, body)
	}
	b.signIn()
	b.within(30*time.Second, chromedp.Navigate(b.url+"/ui/campaigns/later"),
		waitJS(`document.getElementById("rate-form") !== null && document.querySelector("#live dl.stats") !== null`))
	rect := func(sel string) string {
		return `document.querySelector("` + sel + `").getBoundingClientRect()`
	}
	tests := []struct {
		name string
		give string // true in the page
	}{
		{"the counts within the first screen", rect("#live dl.stats") + `.bottom <= innerHeight`},
		{"the rate cap below the counts", rect("#live dl.stats") + `.bottom < ` + rect("#rate-form") + `.top`},
		{"the rate cap on one line", rect("#rate-form") + `.height < 2 * ` + rect("#set-rate") + `.height`},
	}
	for _, tt := range tests {
		if !js[bool](b, tt.give) {
			t.Errorf("%s: %s is false", tt.name, tt.give)
		}
	}
}
