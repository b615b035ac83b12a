package api

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// seedAudience gives the apps and channels the package's campaign tests
// use one device and one subscriber each, so their campaigns have someone
// to reach (campaign.CheckAudience).
func seedAudience(tb testing.TB, db *pgxpool.Pool) {
	tb.Helper()
	_, err := db.Exec(context.Background(), `
		INSERT INTO devices (app, token, user_id, platform, event_at)
		SELECT app, 'seed-' || app, 1, 1, now() FROM unnest(ARRAY['a', 'com.example.news', 'news', 'com.example.chat']) AS app;
		INSERT INTO subscriptions (channel, user_id)
		SELECT c, 1 FROM unnest(ARRAY['x', 'breaking', 'sport', 'news', '101']) AS c`)
	if err != nil {
		tb.Fatal(err)
	}
}

// A campaign nobody could receive (an app without active devices, a
// channel without subscribers) is a 400 naming the empty part, unless it
// says "allow_empty": true.
func TestCampaignWithEmptyAudience(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{AdminToken: "op"})
	if _, err := a.db.Exec(t.Context(), `UPDATE devices SET state = 1 WHERE app = 'news'`); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		give       string
		wantStatus int
		want       []string
	}{
		{"both there", `{"app":"a","channels":["x","sport"]`, 201, nil},
		{"unknown app", `{"app":"nope","channels":["x"]`, 400, []string{`app "nope" has no registered devices`, "allow_empty"}},
		{"app with only deleted devices", `{"app":"news","channels":["x"]`, 400, []string{`app "news" has no registered devices`}},
		{"one channel empty", `{"app":"a","channels":["x","sports"]`, 400, []string{`channels ["sports"] have no subscribers`}},
		{"both empty", `{"app":"nope","channels":["y"]`, 400, []string{`"nope"`, `["y"]`}},
		{"allowed empty", `{"app":"nope","channels":["y"],"allow_empty":true`, 201, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := a.campaignEntries()
			r := a.do("POST", "/v1/campaigns", tt.give+`,"notification":{"title":"t"}}`, "op")
			if r.status != tt.wantStatus {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tt.wantStatus)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.error(), w) {
					t.Errorf("error %q does not say %q", r.error(), w)
				}
			}
			want := int64(0)
			if tt.wantStatus == http.StatusCreated {
				want = 1
			}
			if grew := a.campaignEntries() - before; grew != want {
				t.Errorf("%d campaign entries added, want %d", grew, want)
			}
		})
	}
}

// A retry of a stored campaign is answered 200 (or 409 for other content)
// whatever its audience has become since: people leave a one-off channel
// and tokens die once it is sent, and a client retrying with the same id
// must not be told its campaign could reach nobody.
func TestCampaignRetryAfterItsAudienceLeft(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, give, empty string
	}{
		{"channel emptied", `{"id":"left-1","app":"a","channels":["x"],"notification":{"title":"t"}}`,
			`DELETE FROM subscriptions WHERE channel = 'x'`},
		{"devices deleted", `{"id":"left-2","app":"news","channels":["sport"],"notification":{"title":"t"}}`,
			`UPDATE devices SET state = 1 WHERE app = 'news'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newDeviceAPI(t, env.Redis.Addr, Auth{AdminToken: "op"})
			if r := a.do("POST", "/v1/campaigns", tt.give, "op"); r.status != http.StatusCreated {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			if _, err := a.db.Exec(t.Context(), tt.empty); err != nil {
				t.Fatal(err)
			}
			if r := a.do("POST", "/v1/campaigns", tt.give, "op"); r.status != http.StatusOK {
				t.Errorf("the same request again: %d %s, want 200", r.status, r.body)
			}
			other := strings.Replace(tt.give, `"title":"t"`, `"title":"u"`, 1)
			if r := a.do("POST", "/v1/campaigns", other, "op"); r.status != http.StatusConflict {
				t.Errorf("the same id with other content: %d %s, want 409", r.status, r.body)
			}
			if n := a.campaignEntries(); n != 1 {
				t.Errorf("%d campaign entries, want 1", n)
			}
		})
	}
}
