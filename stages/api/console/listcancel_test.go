package console_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// titled stores a campaign of nobody's titled title, scheduled an hour
// ahead.
func (b *bed) titled(id, title string) {
	b.t.Helper()
	c := campaign.Campaign{ID: id, App: app, Channels: []string{"nobody"}, Title: title, SendAt: time.Now().Add(time.Hour)}
	if _, _, err := campaign.Create(b.t.Context(), b.rdb, b.db, b.keys, c); err != nil {
		b.t.Fatal(err)
	}
}

// htmxClick clicks the first element matching sel, in the page's own
// turn, once it is there, after htmx processed it (or its form): htmx
// wires what it swaps in at the swap's settle, 20 ms on, and a click
// before that (a test's, the instant the element shows) followed the plain
// link or posted the plain form, to the cancel page or the campaign's.
func htmxClick(sel string) chromedp.Action[chromedp.Void] {
	return waitJS(fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false;
		htmx.process(e.closest("[hx-get], [hx-post]") || e); e.click(); return true })()`, sel))
}

// TestCampaignHeadedByItsTitle: a campaign's page, and its tab, are named
// by its title, as the list names it, with its id beside, selected whole
// by a click; so is its cancel page. They were headed "Campaign <id>", a
// generated string for a form-made campaign, which the operator who just
// clicked "Spring sale" on the list did not recognise.
func TestCampaignHeadedByItsTitle(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	b.titled("a7Kq2", "Spring sale")
	tests := []struct {
		path      string
		wantH1    string
		wantTitle string
	}{
		{"/ui/campaigns/a7Kq2", "Spring sale", "Spring sale · pushpipe"},
		{"/ui/campaigns/a7Kq2/cancel", "Cancel Spring sale", "Cancel Spring sale · pushpipe"},
	}
	// A silent push has neither title nor body: its id names it, on the
	// list too, where its link was empty (nothing to read or click).
	silent := campaign.Campaign{ID: "quiet-1", App: app, Channels: []string{"nobody"}, Notification: []byte(`{"silent":true}`)}
	if _, _, err := campaign.Create(t.Context(), b.rdb, b.db, b.keys, silent); err != nil {
		t.Fatal(err)
	}
	b.signIn()
	b.run(waitJS(`document.querySelector('[data-campaign="quiet-1"]') !== null`))
	if got := b.text(`[data-campaign="quiet-1"] .title`); got != "quiet-1" {
		t.Errorf("the silent campaign's link on the list reads %q, want its id", got)
	}
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/quiet-1"), waitJS(`document.readyState === "complete"`))
	if got, n := b.text("main h1"), js[int](b, `document.querySelectorAll("#page-id").length`); got != "Campaign quiet-1" || n != 0 {
		t.Errorf("the silent campaign's page is headed %q with %d ids beside, want \"Campaign quiet-1\" alone", got, n)
	}
	for _, tt := range tests {
		b.run(chromedp.Navigate(b.url+tt.path), waitJS(`document.readyState === "complete"`))
		if got := b.text("main h1"); got != tt.wantH1 {
			t.Errorf("%s: headed %q, want %q", tt.path, got, tt.wantH1)
		}
		if got := js[string](b, `document.title`); got != tt.wantTitle {
			t.Errorf("%s: tab titled %q, want %q", tt.path, got, tt.wantTitle)
		}
		if got := b.text("#page-id"); got != "a7Kq2" {
			t.Errorf("%s: the id beside the heading reads %q, want a7Kq2", tt.path, got)
		}
		if got := js[string](b, `getComputedStyle(document.getElementById("page-id") || document.body).userSelect`); got != "all" {
			t.Errorf("%s: the id is user-select %q, want all (a click selects it to copy)", tt.path, got)
		}
	}
}

// TestListCancelsInPlace: a running or scheduled campaign's row on the
// list offers Cancel, which asks first, in the list ("No" leaves it
// alone), then cancels it and says so there, the list still open; a
// finished campaign's row offers none. A cancel refused (the campaign
// finished while the question stood) says why, in the same place, with the
// API's 409. The
// list had no cancel: an operator watching a launch go wrong had to open
// the campaign first.
func TestListCancelsInPlace(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	b.expect("status of 409") // the refused cancel, answered 409
	b.titled("c1", "Spring sale")
	b.titled("c2", "Autumn sale")
	b.titled("d1", "Old news")
	if _, err := campaign.Cancel(t.Context(), b.rdb, b.db, b.keys, "d1"); err != nil {
		t.Fatal(err)
	}
	b.signIn()
	b.run(waitJS(`document.querySelector('[data-campaign="d1"]') !== null`))
	if n := js[int](b, `document.querySelectorAll("#cancel-c1, #cancel-c2").length`); n != 2 {
		t.Fatalf("%d of the two scheduled campaigns' rows offer Cancel", n)
	}
	if n := js[int](b, `document.querySelectorAll("#cancel-d1").length`); n != 0 {
		t.Errorf("the canceled campaign's row offers Cancel")
	}
	onList := `location.pathname === "/ui/campaigns" && `
	b.run(htmxClick("#cancel-c1"),
		waitJS(onList+`document.querySelector("#row-action #confirm-cancel") !== null`),
		clickJS("#keep-sending"),
		waitJS(onList+`document.getElementById("row-action").textContent === "" && document.activeElement.id === "cancel-c1"`),
	)
	if rep, err := campaign.Progress(t.Context(), b.rdb, b.db, b.keys, "c1"); err != nil || rep.State != campaign.StateScheduled {
		t.Fatalf("after No: %+v, %v", rep, err)
	}
	b.run(htmxClick("#cancel-c1"),
		waitJS(`document.querySelector("#row-action #confirm-cancel") !== null`),
		htmxClick("#row-action #confirm-cancel"))
	if err := chromedp.Do(b.tab, waitJS(onList+`document.querySelector("#row-action #canceled") !== null &&
			document.querySelector('[data-campaign="c1"]').dataset.state === "canceled" && document.getElementById("cancel-c1") === null`)); err != nil {
		t.Fatalf("after the confirm: %v; the page at %s shows %q", err, js[string](b, `location.href`), b.text("main"))
	}
	if got := b.text("#row-action #canceled"); !strings.Contains(got, "Spring sale (c1) canceled") {
		t.Errorf("the list says %q after the cancel", got)
	}
	if rep, err := campaign.Progress(t.Context(), b.rdb, b.db, b.keys, "c1"); err != nil || rep.State != campaign.StateCanceled {
		t.Errorf("after the cancel: %+v, %v", rep, err)
	}
	// Finished between the question and the answer (a cancel of one
	// canceled already succeeds: canceling twice is safe).
	b.run(htmxClick("#cancel-c2"), waitJS(`document.querySelector("#row-action #confirm-cancel") !== null`))
	if _, err := b.db.Exec(t.Context(), `UPDATE campaigns SET state = 'done' WHERE id = 'c2'`); err != nil {
		t.Fatal(err)
	}
	b.run(htmxClick("#row-action #confirm-cancel"), waitJS(onList+`document.querySelector("#row-action .error[role=alert]") !== null`))
	if got, want := b.text("#row-action .error"), "campaign c2 is already done"; !strings.Contains(got, want) {
		t.Errorf("the refused cancel says %q, want %q", got, want)
	}
}

// TestListCancelRightAfterARefresh: a row's Cancel clicked the instant the
// rows were redrawn (every refresh swaps them) asks in place, as at any
// other time. htmx wires a swapped-in link only at the swap's settle, 20
// ms on, and a click in between followed the plain link to the cancel
// page. The redraw is htmx's own swap, settled as a poll's is, and the
// click comes in the same turn of the page: before the settle, for
// certain, with no timing to be lucky with.
//
// Without script, the row's link opens the cancel page, whose "No, keep
// sending" led to the campaign's page whatever the operator came from: from
// the list, it leads back to the list; from the campaign's page, there.
func TestListCancelRightAfterARefresh(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	b.titled("c1", "Spring sale")
	b.signIn()
	b.run(waitJS(`document.getElementById("cancel-c1") !== null && typeof htmx !== "undefined"`))
	unwired := js[bool](b, `(() => {
		const rows = document.getElementById("rows");
		htmx.swap(rows, rows.innerHTML, {swapStyle: "innerHTML", swapDelay: 0, settleDelay: 20});
		const a = document.getElementById("cancel-c1"), unwired = !a["htmx-internal-data"];
		a.click();
		return unwired })()`)
	if !unwired {
		t.Fatal("htmx had wired the redrawn Cancel before the click: the test clicked too late to prove anything")
	}
	b.run(waitJS(`location.pathname !== "/ui/campaigns" || document.querySelector("#row-action #confirm-cancel") !== null`))
	if path := js[string](b, `location.pathname`); path != "/ui/campaigns" {
		t.Fatalf("a Cancel clicked right after a refresh opened %s, want the question in the list", path)
	}

	// No script: the link as it is, and the page's "No" followed.
	href := js[string](b, `document.getElementById("cancel-c1").getAttribute("href")`)
	tests := []struct {
		name string
		path string
		want string // where "No, keep sending" leads
	}{
		{"from the list", href, "/ui/campaigns"},
		{"from the campaign's page", "/ui/campaigns/c1/cancel", "/ui/campaigns/c1"},
	}
	for _, tt := range tests {
		no := `[...document.querySelectorAll("main a")].find(a => a.textContent === "No, keep sending")`
		b.run(chromedp.Navigate(b.url+tt.path), waitJS(`location.pathname === "/ui/campaigns/c1/cancel" && `+no+` !== undefined`),
			waitJS(`(() => { `+no+`.click(); return true })()`),
			waitJS(`location.pathname !== "/ui/campaigns/c1/cancel" && document.readyState === "complete"`))
		if got := js[string](b, `location.pathname`); got != tt.want {
			t.Errorf("%s (%s): No, keep sending led to %s, want %s", tt.name, tt.path, got, tt.want)
		}
	}
	if rep, err := campaign.Progress(t.Context(), b.rdb, b.db, b.keys, "c1"); err != nil || rep.State != campaign.StateScheduled {
		t.Errorf("after the questions: %+v, %v", rep, err)
	}
}
