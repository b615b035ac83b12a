package console_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/bench"
)

// TestChannelTags: the new-campaign form's channels field takes one channel
// at a time, picked from its suggestions or typed, each added as a tag
// showing its subscribers, removable, and the campaign goes to every tag.
// The field was one comma-separated text with the channel names as its
// datalist: the browser matches a datalist against the whole value, so
// past "news, " it suggested nothing and the second channel was typed
// blind, with no word of its audience. A refused form keeps its tags.
func TestChannelTags(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	if _, err := bench.Seed(t.Context(), b.dbURL, bench.SeedConfig{App: app, Users: 12, Names: []string{"news", "sport"}}); err != nil {
		t.Fatal(err)
	}
	subs := map[string]int{}
	rows, err := b.db.Query(t.Context(), `SELECT channel, count(*) FROM subscriptions GROUP BY channel`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var ch string
		var n int
		if err := rows.Scan(&ch, &n); err != nil {
			t.Fatal(err)
		}
		subs[ch] = n
	}
	if rows.Close(); rows.Err() != nil || subs["news"] == 0 || subs["sport"] == 0 {
		t.Fatalf("seeded subscriptions %v (%v), want news and sport", subs, rows.Err())
	}
	b.expect("status of 400") // the refused form
	b.signIn()
	tags := `[...document.querySelectorAll("#channel-chips li")].map(l => l.dataset.channel + "=" + (l.querySelector(".count") || {textContent: "?"}).textContent).join()`
	b.within(30*time.Second, chromedp.Navigate(b.url+"/ui/campaigns/new"),
		waitJS(`document.querySelectorAll("#channel-names option").length === 2`),
		// A pick from the suggestions, as Chromium's list sends it: the
		// value replaced whole.
		chromedp.SendKeys(chromedp.ID("channels"), "ne"),
		waitJS(`(() => { const e = document.getElementById("channels"); e.value = "news";
			e.dispatchEvent(new InputEvent("input", {bubbles: true, inputType: "insertReplacementText"})); return true })()`),
		// Typed, then Enter, which adds it and does not send the form:
		// its keydown's default is prevented. Dispatched in the page:
		// chromedp sends Enter's keypress apart from its keydown, so the
		// form went out all the same, which a person's typing does not
		// do (hidden while the form's App was empty, a required field;
		// it fills in the only app now).
		chromedp.SendKeys(chromedp.ID("channels"), "sport"),
		waitJS(`(() => { const e = document.getElementById("channels");
			return e.value === "sport" && !e.dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", bubbles: true, cancelable: true})) })()`),
		// Typed with a comma, as the field took them before.
		chromedp.SendKeys(chromedp.ID("channels"), "nobody,"),
		waitJS(`document.querySelectorAll("#channel-chips li").length === 3`))
	want := fmt.Sprintf("news=%d subscribers,sport=%d subscribers,nobody=no subscribers", subs["news"], subs["sport"])
	if got := js[string](b, tags); got != want {
		t.Errorf("the tags are %q, want %q", got, want)
	}
	if got := js[string](b, `document.getElementById("channels").value + "|" + document.getElementById("channels").list.id`); got != "|channel-names" {
		t.Errorf("after the picks the field is %q (value|list), want it empty with the suggestions again", got)
	}
	// Removed, then a form the server refuses (no title): the tags come
	// back with it.
	b.within(30*time.Second, clickJS(`#channel-chips li[data-channel="nobody"] button[aria-label="Remove nobody"]`),
		waitJS(`document.querySelectorAll("#channel-chips li").length === 2`),
		fillApp(app),
		chromedp.SendKeys(chromedp.ID("cid"), "tags"),
		clickJS("#create"),
		waitJS(`document.querySelector(".error[role=alert]") !== null && document.querySelectorAll("#channel-chips li").length === 2`))
	if got, want := js[string](b, `[...document.querySelectorAll("#channel-chips li")].map(l => l.dataset.channel).join()`), "news,sport"; got != want {
		t.Errorf("the refused form's tags are %q, want %q", got, want)
	}
	b.within(30*time.Second, chromedp.SendKeys(chromedp.ID("title"), "Both"),
		clickJS("#create"),
		waitJS(`location.pathname === "/ui/campaigns/tags"`))
	var channels []string
	if err := b.db.QueryRow(t.Context(), `SELECT channels FROM campaigns WHERE id = 'tags'`).Scan(&channels); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(channels, []string{"news", "sport"}) {
		t.Errorf("the campaign goes to %s, want news,sport", strings.Join(channels, ","))
	}
}
