package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// A retry of a stored id is answered from the record (200 for the same
// content, 409 for other) before the checks whose answer changes after
// creation: the app left the apps file (SIGHUP), the channel lost its
// subscribers, the payload is one a release that took it stored. Those
// used to answer the retry 422 or 400, telling a client whose request was
// accepted to change it. A new id still passes every check, and a
// request's own malformed input is still a 400 first.
func TestRetryAnsweredFromTheRecord(t *testing.T) {
	t.Parallel()
	const reserved = `,"data":{"from":"x"}` // FCM's: refused by deliver.CheckCampaign
	kinds := []struct {
		name      string
		path      string
		created   int
		body      func(id, app, title, data string) string
		store     func(t *testing.T, a *deviceAPI, body string)
		wantEmpty int // a new id whose app has no device
	}{
		{"campaign", "/v1/campaigns", http.StatusCreated,
			func(id, app, title, data string) string {
				return fmt.Sprintf(`{"id":%q,"app":%q,"channels":["x"],"notification":{"title":%q%s}}`, id, app, title, data)
			}, storeCampaignUnchecked, http.StatusBadRequest},
		{"message", "/v1/messages", http.StatusAccepted,
			func(id, app, title, data string) string {
				return fmt.Sprintf(`{"id":%q,"app":%q,"users":[1,2],"notification":{"title":%q%s}}`, id, app, title, data)
			}, storeMessageUnchecked, http.StatusAccepted},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
			if r := a.do("POST", k.path, k.body("r-1", "a", "Hello", ""), ""); r.status != k.created {
				t.Fatalf("create: %d %s, want %d", r.status, r.body, k.created)
			}
			k.store(t, a, k.body("r-old", "b", "Old", reserved))
			// What the checks read changes: "a" leaves the apps file,
			// channel x loses its subscribers.
			if err := a.srv.ReloadApps([]string{"b"}, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := a.db.Exec(t.Context(), `DELETE FROM subscriptions WHERE channel = 'x'`); err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				name string
				give string
				want int
				say  string
			}{
				{"retry, app gone", k.body("r-1", "a", "Hello", ""), http.StatusOK, `"id":"r-1"`},
				{"changed retry, app gone", k.body("r-1", "a", "Hi", ""), http.StatusConflict, "already used for different content"},
				{"retry, malformed", k.body("r-1", "", "Hello", ""), http.StatusBadRequest, "app"},
				{"retry of a payload refused now", k.body("r-old", "b", "Old", reserved), http.StatusOK, `"id":"r-old"`},
				{"changed retry of it", k.body("r-old", "b", "Older", reserved), http.StatusConflict, "already used for different content"},
				{"new id, app gone", k.body("r-2", "a", "Hello", ""), http.StatusUnprocessableEntity, `app \"a\" is not known to this API`},
				{"new id, payload refused", k.body("r-3", "b", "New", reserved), http.StatusBadRequest, `key \"from\" is reserved by FCM`},
				{"new id, app without devices", k.body("r-4", "b", "New", ""), k.wantEmpty, ""},
			}
			for _, tt := range tests {
				r := a.do("POST", k.path, tt.give, "")
				if r.status != tt.want || !strings.Contains(r.body, tt.say) {
					t.Errorf("%s: %d %s, want %d saying %s", tt.name, r.status, r.body, tt.want, tt.say)
				}
			}
		})
	}
}

// storeCampaignUnchecked stores the campaign of a POST /v1/campaigns body
// as an API without deliver.CheckCampaign would have: what a release whose
// renderers took more left in the table.
func storeCampaignUnchecked(t *testing.T, a *deviceAPI, body string) {
	t.Helper()
	var req campaignRequest
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	content, err := parseNotification(req.Notification, req.Priority, push.PriorityNormal)
	if err != nil {
		t.Fatal(err)
	}
	c := campaign.Campaign{ID: req.ID.key, App: req.App, Channels: req.Channels,
		Title: content.Title, Body: content.Body, Data: content.Data}
	if err := req.apply(&c); err != nil {
		t.Fatal(err)
	}
	if c.Notification, err = json.Marshal(content); err != nil {
		t.Fatal(err)
	}
	if _, _, err := campaign.Create(t.Context(), a.rdb, a.db, a.keys, c); err != nil {
		t.Fatal(err)
	}
}

// storeMessageUnchecked is storeCampaignUnchecked of a POST /v1/messages
// body.
func storeMessageUnchecked(t *testing.T, a *deviceAPI, body string) {
	t.Helper()
	var req messageRequest
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	content, err := parseNotification(req.Notification, req.Priority, push.PriorityHigh)
	if err != nil {
		t.Fatal(err)
	}
	m := campaign.Message{Campaign: campaign.Campaign{ID: req.ID.key, App: req.App,
		Title: content.Title, Body: content.Body, Data: content.Data, Priority: req.Priority}, Users: req.Users}
	if m.Notification, err = json.Marshal(content); err != nil {
		t.Fatal(err)
	}
	if _, _, err := campaign.CreateMessage(t.Context(), a.rdb, a.db, a.keys, m); err != nil {
		t.Fatal(err)
	}
}
