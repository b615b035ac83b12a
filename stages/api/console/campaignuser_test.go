package console_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// TestCampaignUserLookup: a campaign's page answers support's first
// question, "did user 42 get it, and if not, why?": a user id typed in
// leads to each of their devices' outcome and the provider's reason, from
// the results stream; a user with none is told so with where to look
// next; past what the page read, it says so and gives the command that
// reads every event.
func TestCampaignUserLookup(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	b.create("launch-1", time.Time{})
	// What deliver leaves of three devices: user 42's two (one sent, one
	// failed with the provider's reason), user 43's one, in two partitions.
	now := time.Now().UnixMilli()
	ev := func(dev, user int64, platform, token, outcome, reason string) pipeline.ResultEvent {
		return pipeline.ResultEvent{ID: pipeline.ResultID("launch-1", "", dev, outcome), Campaign: "launch-1", App: app,
			UserID: user, Platform: platform, Token: token, Outcome: outcome, Reason: reason, AtMs: now}
	}
	if _, err := pipeline.Emit(t.Context(), b.rdb,
		pipeline.Message{Stream: b.keys.Stream(pipeline.StreamResults, 0), Fields: pipeline.ResultFields(
			ev(1, 42, "ios", strings.Repeat("ab", 32), pipeline.OutcomeSent, ""),
			ev(2, 42, "android", "fcm-token:of-42", pipeline.OutcomeFailed, "fcm: UNAVAILABLE"))},
		pipeline.Message{Stream: b.keys.Stream(pipeline.StreamResults, 1), Fields: pipeline.ResultFields(
			ev(3, 43, "ios", strings.Repeat("cd", 32), pipeline.OutcomeSent, ""))},
	); err != nil {
		t.Fatal(err)
	}
	counts := func(sent, failed int) {
		t.Helper()
		if err := b.rdb.Do(t.Context(), b.rdb.B().Hset().Key(b.keys.Stats(0, "launch-1")).FieldValue().
			FieldValue(pipeline.StatSent, strconv.Itoa(sent)).FieldValue(pipeline.StatFailed, strconv.Itoa(failed)).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	counts(2, 1)
	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/launch-1"), waitJS(`document.getElementById("lookup") !== null`),
		chromedp.SendKeys(chromedp.ID("lookup-user"), "42"), clickJS(`#lookup button`),
		waitJS(`location.pathname === "/ui/campaigns/launch-1/user" && document.getElementById("devices") !== null`))
	rows := js[string](b, `[...document.querySelectorAll("#devices tbody tr")].map(r => r.dataset.user + ":" + r.dataset.outcome + ":" + r.cells[4].textContent).join()`)
	if want := "42:failed:fcm: UNAVAILABLE,42:sent:"; rows != want {
		t.Errorf("user 42's devices read %q, want %q", rows, want)
	}
	if n := js[int](b, `document.querySelectorAll("#devices-missing, #no-outcome").length`); n != 0 {
		t.Errorf("%d notes of outcomes missing, want none: every event of the campaign was read", n)
	}
	tests := []struct {
		name       string
		query      string
		sent, fail int
		status     int
		says       []string
	}{
		{"a user with no outcome", "user_id=44", 2, 1, http.StatusOK,
			[]string{"No device of user 44 has an outcome in this campaign (3 devices have one)", "pushpipe users show 44",
				`<form id="lookup" method="get" action="/ui/campaigns/launch-1/user">`}},
		{"more outcomes than events read", "user_id=43", 2, 5, http.StatusOK,
			[]string{`data-user="43" data-outcome="sent"`, "3 of the campaign's 7 devices with an outcome were read here: the user may have more",
				"pushpipe results tail --campaign launch-1 --user 43 --no-follow"}},
		{"not a user id", "user_id=x", 2, 1, http.StatusBadRequest, []string{"A user id is a positive integer, such as 42."}},
		{"no user id", "", 2, 1, http.StatusBadRequest, []string{"A user id is a positive integer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counts(tt.sent, tt.fail)
			status, body := b.get("/ui/campaigns/launch-1/user?" + tt.query)
			if status != tt.status {
				t.Errorf("status %d, want %d", status, tt.status)
			}
			for _, s := range tt.says {
				if !strings.Contains(body, s) {
					t.Errorf("the page does not say %q:\n%s", s, body)
				}
			}
		})
	}
	if status, body := b.get("/ui/campaigns/nothing/user?user_id=42"); status != http.StatusNotFound || !strings.Contains(body, "There is no campaign nothing.") {
		t.Errorf("an unknown campaign: %d\n%s", status, body)
	}
}

// TestCampaignUserLookupNamesTheCampaign: the lookup's page is headed by
// the campaign's name, its id beside, as the campaign's own page is, and
// its link back says the name. It said "User 42 in campaign 1a2522af885-…",
// an id made by the form, under a campaign support knew as "Launch day".
func TestCampaignUserLookupNamesTheCampaign(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	if _, _, err := campaign.Create(t.Context(), b.rdb, b.db, b.keys, campaign.Campaign{ID: "1a2522af885-a90d", App: app, Channels: []string{"nobody"}, Title: "Launch day"}); err != nil {
		t.Fatal(err)
	}
	status, body := b.get("/ui/campaigns/1a2522af885-a90d/user?user_id=42")
	for _, want := range []string{`<h1>User 42 in Launch day</h1>`, `id="page-id" title="its id: a click selects it">1a2522af885-a90d</code>`,
		`<a href="/ui/campaigns/1a2522af885-a90d" id="back">Launch day</a>`} {
		if status != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("%d, no %s in\n%s", status, want, body)
		}
	}
}
