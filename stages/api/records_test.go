package api

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// A record's warning names its id under a field of its own: a message's id
// under "message" was a second "message" key beside zerolog's text, and a
// JSON reader kept only one of them.
func TestRecordLogNamesTheID(t *testing.T) {
	db, rdb := databaseDown(t)
	tests := []struct {
		path, field string
	}{
		{"/v1/messages/m1", `"message_id":"m1"`},
		{"/v1/campaigns/c1", `"campaign":"c1"`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			var logs pipelinetest.Logs
			srv := httptest.NewServer(New(Config{Redis: rdb, DB: db, Keys: pipeline.NewKeys("logid", 16),
				Log: zerolog.New(&logs), Auth: Auth{Insecure: true}}))
			t.Cleanup(srv.Close)
			a := &deviceAPI{t: t, url: srv.URL}
			if r := a.do("GET", tt.path, "", ""); r.status != http.StatusServiceUnavailable {
				t.Fatalf("GET %s with PostgreSQL down: %d %s", tt.path, r.status, r.body)
			}
			line := strings.TrimSpace(logs.String())
			if strings.Count(line, `"message":`) != 1 || !strings.Contains(line, tt.field) {
				t.Fatalf("log %s: want one \"message\" key and %s", line, tt.field)
			}
		})
	}
}

// TestRecordIDThatCannotExist: a campaign or message id in the path that no
// record can have (a space, a quote, a tab, a hash tag's braces, too long)
// is a plain 404, worded as for an id no record has, on every route that
// names one, campaigns and messages alike: the id quoted, so that one with
// a space reads as one id, and none of the id syntax a create's 400 gives
// (the request has no field "id" to correct).
func TestRecordIDThatCannotExist(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	routes := []struct {
		kind, method, path, body string // path's ID is the id
	}{
		{"campaign", "GET", "/v1/campaigns/ID", ""},
		{"campaign", "POST", "/v1/campaigns/ID/cancel", ""},
		{"campaign", "PATCH", "/v1/campaigns/ID", `{"rate_per_second":5}`},
		{"message", "GET", "/v1/messages/ID", ""},
	}
	tests := []struct {
		give string // the id, before escaping
		want string // how the 404 shows it
	}{
		{"a b", `"a b"`},
		{`a"b`, `"a\"b"`},
		{"a\tb", `"a\tb"`},
		{"{p1}", `"{p1}"`},
		{"a:b", `"a:b"`},
		{"café", `"café"`},
		{strings.Repeat("x", 129), `"` + strings.Repeat("x", 64) + `…"`},
		{"nope", "nope"}, // an id that can exist, and does not: the same words
	}
	for _, rt := range routes {
		for _, tt := range tests {
			path := strings.Replace(rt.path, "ID", url.PathEscape(tt.give), 1)
			want := "no " + rt.kind + " " + tt.want + ": check the id (GET /v1/" + rt.kind + "s lists them, newest first)"
			if r := a.do(rt.method, path, rt.body, ""); r.status != http.StatusNotFound || r.error() != want {
				t.Errorf("%s %s: %d %s, want 404 %q", rt.method, path, r.status, r.body, want)
			}
		}
	}
}
