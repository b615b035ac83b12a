package console_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/stages/api"
)

// TestRotatedTokenEndsSessions: sessions live in Redis and outlive a
// restart, so rotating a leaked operator token must end the sessions
// signed in with it: a replica given the new token sends their cookie to
// the sign-in form, while replicas of the same token share the session.
func TestRotatedTokenEndsSessions(t *testing.T) {
	rdb, keys := sessionRedis(t)
	serve := func(auth api.Auth) string {
		srv := httptest.NewServer(api.New(api.Config{Redis: rdb, Keys: keys, Log: zerolog.Nop(), Auth: auth}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	const rotated = "rotated-operator-token-9876543210"
	before := serve(api.Auth{AdminToken: adminToken})
	session := consoleCookie(t, before, "/ui/signin", url.Values{"token": {adminToken}}, nil)
	tests := []struct {
		name string
		url  string
		want int
	}{
		{"a replica of the same token", serve(api.Auth{AdminToken: adminToken}), http.StatusOK},
		{"the same token, app keys reloaded", serve(api.Auth{AdminToken: adminToken, AppKeys: map[string]string{app: appKey}}), http.StatusOK},
		{"after rotation", serve(api.Auth{AdminToken: rotated}), http.StatusSeeOther},
		{"under --insecure-no-auth", serve(api.Auth{Insecure: true}), http.StatusSeeOther},
		{"the old server still", before, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(context.Background(), "GET", tt.url+"/ui/pipeline", nil)
			req.AddCookie(session)
			resp, err := noRedirects.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("GET /ui/pipeline with the session: %d (Location %q), want %d", resp.StatusCode, resp.Header.Get("Location"), tt.want)
			}
		})
	}
	// The new token signs in on the rotated replica.
	after := consoleCookie(t, tests[2].url, "/ui/signin", url.Values{"token": {rotated}}, nil)
	if after.Value == "" {
		t.Error("the rotated token did not sign in")
	}
}
