package console_test

import (
	"fmt"
	"strings"
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
	t.Parallel()
	b := newBed(t)
	// A message needs an app with devices.
	if _, err := bench.Seed(t.Context(), b.dbURL, bench.SeedConfig{App: app, Users: 10, Channels: 1}); err != nil {
		t.Fatal(err)
	}
	b.create("c1", time.Time{})
	b.sendMessage("dm-1", "Hi", []int64{1})
	b.signIn()
	// Each page is opened once and all of its labels read there: a
	// navigation costs a loaded machine's Chromium a second or more.
	type label struct{ label, unit string } // the <dt> or <th> that starts with it
	tests := []struct {
		path   string
		labels []label
	}{
		{"/ui/campaigns", []label{{"Targets", "(people)"}, {"Sent", "(devices)"}}},
		{"/ui/campaigns/c1", []label{{"Targets", "(people)"}, {"Sent", "(devices)"}, {"Failed", "(devices)"},
			{"Muted", "(people)"}, {"Invalid", "(devices)"}, {"Duplicates suppressed", "(people)"}}},
		{"/ui/messages", []label{{"Targets", "(people)"}, {"Sent", "(devices)"}}},
		{"/ui/messages/dm-1", []label{{"Targets", "(people)"}, {"Sent", "(devices)"}}},
	}
	for _, tt := range tests {
		b.run(chromedp.Navigate(b.url+tt.path), waitJS(`document.readyState === "complete"`))
		for _, l := range tt.labels {
			want := l.label + " " + l.unit
			found := js[bool](b, fmt.Sprintf(`[...document.querySelectorAll("main dt, main th")].some(e => e.innerText.trim() === %q)`, want))
			if !found {
				t.Errorf("%s: no label %q", tt.path, want)
			}
		}
	}
}

// TestCreatedIsATime: a campaign's and a message's page say when it was
// created as a UTC time. The line is outside the part that refreshes, and
// said "created 0s ago" for as long as the page stayed open: the README's
// own screenshot showed a 30-second run "created 0s ago".
func TestCreatedIsATime(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	if _, err := bench.Seed(t.Context(), b.dbURL, bench.SeedConfig{App: app, Users: 10, Channels: 1}); err != nil {
		t.Fatal(err)
	}
	b.create("c1", time.Time{})
	b.sendMessage("dm-1", "Hi", []int64{1})
	tests := []struct{ path, id string }{
		{"/ui/campaigns/c1", "c1"},
		{"/ui/messages/dm-1", "dm-1"},
	}
	for _, tt := range tests {
		var created time.Time
		if err := b.db.QueryRow(t.Context(), `SELECT created_at FROM campaigns WHERE id = $1`, tt.id).Scan(&created); err != nil {
			t.Fatal(err)
		}
		_, body := b.get(tt.path)
		want := "created " + created.UTC().Format("2006-01-02 15:04:05 UTC")
		if !strings.Contains(body, want) {
			t.Errorf("%s does not say %q:\n%s", tt.path, want, body)
		}
		if strings.Contains(body, "s ago") {
			t.Errorf("%s says a time ago, which will not move", tt.path)
		}
	}
}
