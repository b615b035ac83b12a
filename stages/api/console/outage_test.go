package console_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
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
	tests := []struct {
		name  string
		fail  func(b *bed)
		alert string // what the live part says instead of the figures
	}{
		{"PostgreSQL down", func(b *bed) { b.db.Close() }, "Campaign o1 is unavailable"},
		// The session is read from Redis first, on every refresh.
		{"Redis down", func(b *bed) { b.rdb.Close() }, "Redis did not answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
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
