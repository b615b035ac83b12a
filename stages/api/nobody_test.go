package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A route that reads no body refuses one that says something, in one
// place (wrap), naming the route: PUT .../subscribers/1 with
// {"user_id":2} subscribed user 1 and answered 204, as if 2 had been.
// Nothing is done for a refused request. An empty body, or {} (sent by
// clients with every POST), still passes.
func TestRouteWithoutBodyRefusesOne(t *testing.T) {
	t.Parallel()
	cfg := secConfig(t, Config{Auth: secAuth()}, true)
	srv := New(cfg)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	a := &secAPI{t: t, url: hs.URL, keys: cfg.Keys, cfg: cfg}
	path := strings.NewReplacer("{channel}", "x", "{user_id}", "1", "{id}", "c1", "{app}", "news", "{token}", iosToken)
	count := func() (n int) {
		t.Helper()
		if err := cfg.DB.QueryRow(t.Context(), `SELECT count(*) FROM subscriptions`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, rt := range srv.routes() {
		if rt.body != 0 || rt.scope == scopeConsole {
			continue
		}
		method, pattern, _ := strings.Cut(rt.pattern, " ")
		r := a.call(method, path.Replace(pattern), `{"user_id":2}`, "Bearer "+secAdmin)
		if r.status != http.StatusBadRequest || !strings.HasPrefix(r.error(), rt.pattern+" takes no body") {
			t.Errorf("%s with a body: %d %s, want 400 saying it takes none", rt.pattern, r.status, r.body)
		}
	}
	if r := a.call("PUT", "/v1/channels/x/subscribers/1", `{"user_id":2}`, "Bearer "+secAdmin); !strings.Contains(r.error(), "POST /v1/channels/{channel}/subscribers") {
		t.Errorf("PUT of a subscriber with a body: %s, want the bulk route named", r.body)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d subscriptions written by refused requests", n)
	}
	tests := []struct {
		name, give string
		want       int // subscriptions after
	}{
		{"no body", "", 1},
		{"an empty object", " {} \n", 1},
	}
	for _, tt := range tests {
		if r := a.call("PUT", "/v1/channels/x/subscribers/1", tt.give, "Bearer "+secAdmin); r.status != http.StatusNoContent {
			t.Errorf("%s: %d %s, want 204", tt.name, r.status, r.body)
		}
		if n := count(); n != tt.want {
			t.Errorf("%s: %d subscriptions, want %d", tt.name, n, tt.want)
		}
	}
}
