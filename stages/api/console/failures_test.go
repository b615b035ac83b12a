package console_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// TestFailuresByReason: a campaign's page says none failed, then, as the
// per-partition reason hashes fill (the data contract: Keys.Reasons, summed
// by campaign.Reasons), shows each reason once with its devices summed,
// most first, with a bar each, its text escaped, without a reload.
func TestFailuresByReason(t *testing.T) {
	b := newBed(t)
	ctx := t.Context()
	// No stage runs: the campaign stays where it is, and only the test
	// writes its reasons.
	if _, _, err := campaign.Create(ctx, b.rdb, b.db, b.keys, campaign.Campaign{ID: "f1", App: app, Channels: []string{"nobody"}, Title: "Fails"}); err != nil {
		t.Fatal(err)
	}
	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/f1"),
		waitJS(`document.getElementById("no-failures") !== null && document.querySelector("#failures tr[data-reason]") === null`))

	const markup = `<b>no credentials</b>`
	for _, w := range []struct {
		p      int
		reason string
		n      int64
	}{{0, "Unregistered", 3}, {3, "Unregistered", 2}, {1, "BadDeviceToken", 7}, {2, markup, 1}} {
		if err := b.rdb.Do(ctx, b.rdb.B().Hincrby().Key(b.keys.Reasons(w.p, "f1")).Field(w.reason).Increment(w.n).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	// Another campaign's reasons are not this one's.
	if err := b.rdb.Do(ctx, b.rdb.B().Hincrby().Key(b.keys.Reasons(0, "other")).Field("Unregistered").Increment(100).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	b.run(waitJS(`document.querySelectorAll("#failures tr[data-reason]").length === 3 && document.getElementById("no-failures") === null`))
	// Rows, bars and markup read in one evaluation: the live part is
	// swapped every second.
	got := js[string](b, `JSON.stringify({
		rows: [...document.querySelectorAll("#failures tr[data-reason]")].map(r =>
			[r.querySelector(".reason").textContent, r.querySelector(".count").textContent,
			 String(r.querySelector("meter").value), String(r.querySelector("meter").max)]),
		bold: document.querySelectorAll("#failures b").length })`)
	var page struct {
		Rows [][]string
		Bold int
	}
	if err := json.Unmarshal([]byte(got), &page); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"BadDeviceToken", "7", "7", "7"}, {"Unregistered", "5", "5", "7"}, {markup, "1", "1", "7"}}
	if !slices.EqualFunc(page.Rows, want, slices.Equal) {
		t.Errorf("failures by reason %q, want %q", page.Rows, want)
	}
	if page.Bold != 0 {
		t.Errorf("a reason's markup made %d elements", page.Bold)
	}
}
