package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// GET /v1/messages pages the direct messages newest first, each with its
// status and what tells it apart (app, title, priority), and never lists a
// campaign: a backend that lost a message's id had no way to find it but
// the console.
func TestListMessages(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{AdminToken: "op"})
	for _, body := range []string{
		`{"id":"m-1","app":"com.example.chat","users":[1,2],"notification":{"title":"First"}}`,
		`{"id":"m-2","app":"com.example.chat","users":[3],"priority":"normal","notification":{"title":"Second"}}`,
		`{"id":"m-3","app":"com.example.chat","tokens":[{"platform":"android","token":"fcm:a"}],"notification":{"title":"Third"}}`,
	} {
		if r := a.do("POST", "/v1/messages", body, "op"); r.status != http.StatusAccepted {
			t.Fatalf("message: %d %s", r.status, r.body)
		}
	}
	if r := a.do("POST", "/v1/campaigns", `{"id":"c1","app":"com.example.chat","channels":["x"],"notification":{"body":"x"}}`, "op"); r.status != http.StatusCreated {
		t.Fatalf("campaign: %d %s", r.status, r.body)
	}
	// No stage runs: the counters stay at zero, and the list is about
	// which messages and in what order.
	type item struct {
		ID, App, Title, Priority, State string
		CreatedAt                       string `json:"created_at"`
	}
	page := func(query string) (items []item, next string) {
		t.Helper()
		r := a.do("GET", "/v1/messages"+query, "", "op")
		var p struct {
			Messages []item
			Next     string
		}
		if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &p) != nil {
			t.Fatalf("GET /v1/messages%s: %d %s", query, r.status, r.body)
		}
		return p.Messages, p.Next
	}
	first, next := page("?limit=2")
	if len(first) != 2 || first[0].ID != "m-3" || first[1].ID != "m-2" || next != "m-2" {
		t.Fatalf("first page %+v, next %q; want m-3, m-2 and next m-2", first, next)
	}
	if m := first[1]; m.App != "com.example.chat" || m.Title != "Second" || m.Priority != "normal" || m.State != "sending" || m.CreatedAt == "" {
		t.Errorf("m-2 listed as %+v", m)
	}
	if first[0].Priority != "high" {
		t.Errorf("m-3's priority %q, want high (a message's default)", first[0].Priority)
	}
	rest, next := page("?before=m-2")
	if len(rest) != 1 || rest[0].ID != "m-1" || next != "" {
		t.Errorf("second page %+v, next %q; want m-1 alone and no next", rest, next)
	}
	tests := []struct {
		query, want string
	}{
		{"?before=c1", "before: no message c1"},
		{"?before=nope", "before: no message nope"},
		{"?limit=0", "limit: must be a whole number from 1 to 100 (default 20), got 0"},
		{"?limit=-1", "limit: must be a whole number from 1 to 100 (default 20), got -1"},
		{"?before=a%20b", "before: only letters, digits"},
		{"?state=done", `unknown query parameter "state"`},
	}
	for _, tt := range tests {
		if r := a.do("GET", "/v1/messages"+tt.query, "", "op"); r.status != http.StatusBadRequest || !strings.Contains(r.error(), tt.want) {
			t.Errorf("GET /v1/messages%s: %d %s; want 400 %q", tt.query, r.status, r.body, tt.want)
		}
	}
	// Nor is a message's id a cursor of the campaigns' list: it paged by
	// the message's time, an empty page, 200.
	if r := a.do("GET", "/v1/campaigns?before=m-1", "", "op"); r.status != http.StatusBadRequest || !strings.Contains(r.error(), "before: no campaign m-1") {
		t.Errorf("GET /v1/campaigns?before=m-1: %d %s; want 400 naming it", r.status, r.body)
	}
}
