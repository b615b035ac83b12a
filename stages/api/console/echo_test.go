package console_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// TestTypedInputShownAsText: whatever a client or an operator typed, a
// campaign's title and body, an id in a URL or a query parameter, every
// page shows as text, in every context it lands in (text, attributes,
// the live rows' hx-get), and never runs: each payload sets a window
// variable if it runs, and the variable stays unset. What a page repeats of
// a URL is cut as the API's errors cut it (devices.Echo, 64 characters):
// a 10 KB id came back whole in the page that said there was no such
// campaign, and a ?before= or ?stream= in the sentences of the lists.
func TestTypedInputShownAsText(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	const (
		title = `<script>window.__xss="title"</script>`
		body  = `"><img src=x onerror="window.__xss='body'">`
		typed = `"><img src=x onerror=window.__xss=1><script>window.__xss=2</script>`
	)
	long := typed + strings.Repeat("z", 200) // over the 64 characters repeated
	cut := long[:64] + "…"
	if _, _, err := campaign.Create(t.Context(), b.rdb, b.db, b.keys,
		campaign.Campaign{ID: "xss-1", App: app, Channels: []string{"nobody"}, Title: title, Body: body}); err != nil {
		t.Fatal(err)
	}
	b.expect("status of 404") // the pages of what does not exist
	b.expect("status of 400") // a user id that is none
	b.signIn()
	path, query := url.PathEscape(long), url.QueryEscape(long)
	tests := []struct {
		name  string
		path  string
		want  []string // shown as text
		polls string   // the live part the page polls, whose answer is checked too
	}{
		{"campaign page", "/ui/campaigns/xss-1", []string{title, body}, "/ui/campaigns/xss-1/live"},
		{"campaign list", "/ui/campaigns", []string{title}, "/ui/campaigns/rows"},
		{"no such campaign", "/ui/campaigns/" + path, []string{cut}, ""},
		{"cancel page of no such campaign", "/ui/campaigns/" + path + "/cancel", []string{cut}, ""},
		{"campaigns before no such campaign", "/ui/campaigns?before=" + query, []string{cut}, "/ui/campaigns/rows"},
		{"user lookup, not a user id", "/ui/campaigns/xss-1/user?user_id=" + query, []string{"A user id is a positive integer"}, ""},
		{"user lookup of no such campaign", "/ui/campaigns/" + path + "/user?user_id=1", []string{cut}, ""},
		{"no such message", "/ui/messages/" + path, []string{cut}, ""},
		{"messages before no such message", "/ui/messages?before=" + query, []string{cut}, "/ui/messages/rows"},
		{"dead letters of no such stream", "/ui/deadletters?stream=" + query, []string{cut}, ""},
		{"no such dead letter", "/ui/deadletters/" + path, []string{cut}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.run(chromedp.Navigate(b.url + tt.path))
			for _, w := range tt.want {
				b.run(waitJS(fmt.Sprintf(`document.readyState === "complete" && document.body.innerText.includes(%q)`, w)))
			}
			if tt.polls != "" {
				// A payload in what the live part fetches would run
				// at its swap: wait for one, and the text after it.
				b.run(waitJS(fmt.Sprintf(`performance.getEntriesByType("resource").some(e => e.name.includes(%q))`, tt.polls)))
				for _, w := range tt.want {
					b.run(waitJS(fmt.Sprintf(`document.body.innerText.includes(%q)`, w)))
				}
			}
			if ran := js[string](b, `String(window.__xss)`); ran != "undefined" {
				t.Errorf("%s: a payload ran: window.__xss = %s", tt.path, ran)
			}
			if n := js[int](b, `document.querySelectorAll("img[onerror], script:not([src])").length`); n != 0 {
				t.Errorf("%s: %d elements of a payload in the page", tt.path, n)
			}
			if text := js[string](b, `document.body.innerText`); strings.Contains(text, strings.Repeat("z", 100)) {
				t.Errorf("%s: the page repeats the whole of what was typed, not its first 64 characters:\n%s", tt.path, text)
			}
		})
	}
}
