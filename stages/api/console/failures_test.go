package console_test

import (
	"cmp"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/bench"
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

// TestFailuresAtProvider: a campaign whose devices the fake provider
// refuses (unregistered and malformed tokens, by token) shows, once done,
// the reasons deliver recorded: the same table campaign.Reasons reads, and
// its devices add up to the campaign's failed and invalid ones.
func TestFailuresAtProvider(t *testing.T) {
	b := newBed(t)
	b.launch(300, 1000, bench.SinkFake, "--unregistered-rate", "0.2", "--bad-token-rate", "0.1")
	if _, _, err := campaign.Create(t.Context(), b.rdb, b.db, b.keys, campaign.Campaign{ID: "bad-1", App: app, Channels: []string{"ch0"}, Title: "Refused"}); err != nil {
		t.Fatal(err)
	}
	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/bad-1"),
		waitJS(`document.getElementById("state").textContent === "done" && document.querySelector("#failures tr[data-reason]") !== null`))
	got := js[string](b, `JSON.stringify([...document.querySelectorAll("#failures tr[data-reason]")].map(r =>
		[r.querySelector(".reason").textContent, r.querySelector(".count").textContent.replaceAll(",", "")]))`)
	var rows [][]string
	if err := json.Unmarshal([]byte(got), &rows); err != nil {
		t.Fatal(err)
	}
	reasons, err := campaign.Reasons(t.Context(), b.rdb, b.keys, "bad-1")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := campaign.Progress(t.Context(), b.rdb, b.db, b.keys, "bad-1")
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, n := range reasons {
		sum += n
	}
	shown := map[string]int64{}
	for _, r := range rows {
		n, _ := strconv.ParseInt(r[1], 10, 64)
		shown[r[0]] = n
	}
	if !maps.Equal(shown, reasons) || len(rows) != len(reasons) {
		t.Errorf("page shows %q, campaign.Reasons %v", rows, reasons)
	}
	if rep.InvalidTokens == 0 || sum != rep.Failed+rep.InvalidTokens {
		t.Errorf("reasons add up to %d devices; the campaign has %d failed and %d invalid", sum, rep.Failed, rep.InvalidTokens)
	}
	if !slices.IsSortedFunc(rows, func(a, b []string) int { return cmp.Compare(shown[b[0]], shown[a[0]]) }) {
		t.Errorf("reasons not most first: %q", rows)
	}
}
