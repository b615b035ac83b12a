package api

import (
	"net/http"
	"strings"
	"testing"
)

// A field the API does not take is answered with the field it is a
// spelling of (camelCase, capitals, a typo, a word of it), or the object
// it belongs in: "(field names are case-sensitive)" alone left the caller
// to find either in the reference. Nothing is written.
func TestUnknownFieldSaysWhatToSend(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	const (
		note = `"notification":{"title":"t"}`
		dev  = `"app":"news","platform":"android","token":"tok"`
	)
	tests := []struct{ name, method, path, give, want string }{
		{"device camelCase", "POST", "/v1/devices", `{` + dev + `,"userId":5}`, `unknown field "userId": did you mean "user_id"?`},
		{"device capitals", "POST", "/v1/devices", `{` + dev + `,"USER_ID":5}`, `unknown field "USER_ID": did you mean "user_id"?`},
		{"device typo", "POST", "/v1/devices", `{"app":"news","platform":"android","tokn":"tok","user_id":5}`, `unknown field "tokn": did you mean "token"?`},
		{"batch item", "POST", "/v1/devices/batch", `[{` + dev + `,"user_id":5},{` + dev + `,"userID":6}]`, `item 1: unknown field "userID": did you mean "user_id"?`},
		{"preferences, a word of two", "PUT", "/v1/users/7/preferences", `{"muted":["x"]}`, `unknown field "muted": did you mean "muted_channels" or "muted_categories"?`},
		{"subscribers capitals", "POST", "/v1/channels/c/subscribers", `{"Add":[1]}`, `unknown field "Add": did you mean "add"?`},
		{"campaign ttl", "POST", "/v1/campaigns", `{"app":"news","channels":["x"],"ttl":60,` + note + `}`, `unknown field "ttl": did you mean "ttl_seconds"?`},
		{"campaign inline field", "POST", "/v1/campaigns", `{"app":"news","channels":["x"],"sendAt":"2030-01-01T00:00:00Z",` + note + `}`, `unknown field "sendAt": did you mean "send_at"?`},
		{"campaign title at the top", "POST", "/v1/campaigns", `{"app":"news","channels":["x"],"title":"t","body":"b"}`,
			`unknown field "title": it belongs inside "notification", as in {"notification":{"title":...}}`},
		{"campaign badge at the top", "POST", "/v1/campaigns", `{"app":"news","channels":["x"],"badge":1,` + note + `}`, `unknown field "badge": it belongs inside "notification"`},
		{"campaign priority in the notification", "POST", "/v1/campaigns", `{"app":"news","channels":["x"],"notification":{"title":"t","priority":"high"}}`,
			`unknown field "notification.priority": "priority" is a field of the request itself, beside "notification"`},
		{"campaign ttl in the notification", "POST", "/v1/campaigns", `{"app":"news","channels":["x"],"notification":{"title":"t","ttl_seconds":60}}`,
			`unknown field "notification.ttl_seconds": "ttl_seconds" is a field of the request itself`},
		{"notification camelCase", "POST", "/v1/campaigns", `{"app":"news","channels":["x"],"notification":{"title":"t","threadId":"r"}}`,
			`unknown field "notification.threadId": did you mean "notification.thread_id"?`},
		{"localized typo", "POST", "/v1/campaigns", `{"app":"news","channels":["x"],"notification":{"title":"t","localized":{"ko":{"titel":"x"}}}}`,
			`unknown field "notification.localized.ko.titel": did you mean "notification.localized.ko.title"?`},
		{"message title at the top", "POST", "/v1/messages", `{"app":"news","users":[1],"title":"t"}`, `unknown field "title": it belongs inside "notification"`},
		{"message priority in the notification", "POST", "/v1/messages", `{"app":"news","users":[1],"notification":{"title":"t","priority":"normal"}}`,
			`unknown field "notification.priority": "priority" is a field of the request itself`},
		{"message user", "POST", "/v1/messages", `{"app":"news","user":[1],` + note + `}`, `unknown field "user": did you mean "users"?`},
		{"message token typo", "POST", "/v1/messages", `{"app":"news","tokens":[{"platform":"android","tokn":"x"}],` + note + `}`,
			`unknown field "tokens[0].tokn": did you mean "tokens[0].token"?`},
		{"rate camelCase", "PATCH", "/v1/campaigns/c1", `{"ratePerSecond":5}`, `unknown field "ratePerSecond": did you mean "rate_per_second"?`},
		// No guess when nothing is alike.
		{"nothing alike", "POST", "/v1/campaigns", `{"app":"news","channels":["x"],"extra":1,` + note + `}`, `unknown field "extra" (field names are case-sensitive)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do(tt.method, tt.path, tt.give, "")
			if r.status != http.StatusBadRequest || !strings.Contains(r.error(), tt.want) {
				t.Fatalf("got %d %.300s, want 400 with %q", r.status, r.body, tt.want)
			}
		})
	}
	if n := a.campaignEntries(); n != 0 {
		t.Fatalf("%d campaign entries after only refused requests", n)
	}
	if evs := a.events(); len(evs) != 0 {
		t.Fatalf("%d device events after only refused requests", len(evs))
	}
}
