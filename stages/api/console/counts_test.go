package console_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/bench"
)

// TestCountsSayWhatTheyCount: every count on the campaign list, a campaign's
// page, the message list and a message's page says whether it counts people
// or devices. Unlabelled, the demo campaign read "Targets 100,000, Sent
// 119,917": a campaign that sent to more than it targeted, to anyone who
// did not know a person has several devices.
func TestCountsSayWhatTheyCount(t *testing.T) {
	b := newBed(t)
	// A message needs an app with devices.
	if _, err := bench.Seed(t.Context(), b.dbURL, bench.SeedConfig{App: app, Users: 10, Channels: 1}); err != nil {
		t.Fatal(err)
	}
	b.create("c1", time.Time{})
	b.sendMessage("dm-1", "Hi", []int64{1})
	b.signIn()
	tests := []struct {
		path  string
		label string // the <dt> or <th> that starts with it
		unit  string
	}{
		{"/ui/campaigns", "Targets", "(people)"},
		{"/ui/campaigns", "Sent", "(devices)"},
		{"/ui/campaigns/c1", "Targets", "(people)"},
		{"/ui/campaigns/c1", "Sent", "(devices)"},
		{"/ui/campaigns/c1", "Failed", "(devices)"},
		{"/ui/campaigns/c1", "Muted", "(people)"},
		{"/ui/campaigns/c1", "Invalid", "(devices)"},
		{"/ui/campaigns/c1", "Duplicates suppressed", "(people)"},
		{"/ui/messages", "Targets", "(people)"},
		{"/ui/messages", "Sent", "(devices)"},
		{"/ui/messages/dm-1", "Targets", "(people)"},
		{"/ui/messages/dm-1", "Sent", "(devices)"},
	}
	for _, tt := range tests {
		b.run(chromedp.Navigate(b.url+tt.path), waitJS(`document.readyState === "complete"`))
		want := tt.label + " " + tt.unit
		found := js[bool](b, fmt.Sprintf(`[...document.querySelectorAll("main dt, main th")].some(e => e.innerText.trim() === %q)`, want))
		if !found {
			t.Errorf("%s: no label %q", tt.path, want)
		}
	}
}
