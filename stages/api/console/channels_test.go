package console_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestChannelsPage: the Channels page (its nav link) lists the channels
// by name with their subscribers, a page of 100 at a time with a link to
// the next; and the new campaign form offers the channel names, each with
// its subscribers, as the channels field's suggestions (a datalist).
func TestChannelsPage(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	if _, err := b.db.Exec(t.Context(), `DELETE FROM subscriptions`); err != nil {
		t.Fatal(err)
	}
	if status, body := b.get("/ui/channels"); status != http.StatusOK || !strings.Contains(body, "No channels yet") {
		t.Errorf("no subscriptions: /ui/channels answered %d without \"No channels yet\"", status)
	}
	if status, body := b.get("/ui/channels?after=a%20b"); status != http.StatusBadRequest || !strings.Contains(body, "which no channel can be named") {
		t.Errorf("/ui/channels?after=a%%20b answered %d, want 400 saying no channel has that name", status)
	}
	// ch000..ch104, channel i with i%3+1 subscribers, and "news" with 1500:
	// 106 channels, "news" on the second page.
	if _, err := b.db.Exec(t.Context(), `
		INSERT INTO subscriptions (channel, user_id)
		SELECT 'ch' || lpad(c::text, 3, '0'), u FROM generate_series(0, 104) c, generate_series(1, c % 3 + 1) u;
		INSERT INTO subscriptions (channel, user_id) SELECT 'news', u FROM generate_series(1, 1500) u`); err != nil {
		t.Fatal(err)
	}
	rows := `[...document.querySelectorAll("#channel-list tbody tr")].map(r => r.dataset.channel + "=" + r.querySelector(".subscribers").textContent)`
	b.signIn()
	b.run(clickJS(`nav a[href="/ui/channels"]`),
		waitJS(`location.pathname === "/ui/channels" && document.querySelectorAll("#channel-list tbody tr").length > 0`))
	if got := js[string](b, `document.querySelector('nav a[aria-current="page"]').textContent`); got != "Channels" {
		t.Errorf("the navigation marks %q, want Channels", got)
	}
	var want []string
	for c := range 100 {
		want = append(want, fmt.Sprintf("ch%03d=%d", c, c%3+1))
	}
	if got := js[string](b, rows+`.join()`); got != strings.Join(want, ",") {
		t.Errorf("first page:\n%s\nwant\n%s", got, strings.Join(want, ","))
	}
	b.run(clickJS("#next-channels"), waitJS(`location.search === "?after=ch099" && document.querySelectorAll("#channel-list tbody tr").length > 0`))
	if got, want := js[string](b, rows+`.join()`), "ch100=2,ch101=3,ch102=1,ch103=2,ch104=3,news=1,500"; got != want {
		t.Errorf("second page: %s, want %s", got, want)
	}
	if n := js[int](b, `document.querySelectorAll("#next-channels").length`); n != 0 {
		t.Errorf("the last page links to %d next pages, want none", n)
	}
	b.run(clickJS(`nav a[href="/ui/campaigns/new"]`),
		waitJS(`location.pathname === "/ui/campaigns/new" && document.querySelectorAll("#channel-names option").length === 106`))
	if got := js[string](b, `document.getElementById("channels").list.id`); got != "channel-names" {
		t.Errorf("the channels field's list is %q, want channel-names", got)
	}
	opts := js[string](b, `[...document.querySelectorAll("#channel-names option")].slice(-2).map(o => o.value + "|" + o.label).join()`)
	if want := "ch104|ch104 · 3 subscribers,news|news · 1,500 subscribers"; opts != want {
		t.Errorf("the last suggestions are %q, want %q", opts, want)
	}
}
