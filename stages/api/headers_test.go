package api

import (
	"net/http"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
)

// TestAnswersAreNeverSniffed: every answer of the API says nosniff. Error
// messages quote the request's path and headers, so a browser that sniffed
// a JSON answer as HTML would run what a crafted link put in it.
func TestAnswersAreNeverSniffed(t *testing.T) {
	a := newSecAPI(t, Config{Auth: secAuth()}, false)
	tests := []struct {
		name, method, path, body, auth string
		want                           int
	}{
		{"no token", "GET", "/v1/<script>", "", "", http.StatusUnauthorized},
		{"unknown route", "GET", "/v1/<script>", "", "Bearer " + secAdmin, http.StatusNotFound},
		{"app key outside its scope", "GET", "/v1/campaigns", "", "Bearer " + secNews, http.StatusForbidden},
		{"bad JSON", "POST", "/v1/devices", "<html>", "Bearer " + secNews, http.StatusBadRequest},
		{"reference", "GET", OpenAPIPath, "", "Bearer " + secNews, http.StatusOK},
		{"non-canonical path", "GET", "/v1//campaigns", "", "Bearer " + secAdmin, http.StatusTemporaryRedirect},
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.callWith(client, tt.method, tt.path, tt.body, tt.auth)
			if r.status != tt.want {
				t.Fatalf("%s %s: %d %s, want %d", tt.method, tt.path, r.status, r.body, tt.want)
			}
			if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("%s %s (%d): X-Content-Type-Options %q, want nosniff", tt.method, tt.path, r.status, got)
			}
		})
	}
}

// TestNoOpsOnTheAPIPort: /metrics and pprof live on the --http port only,
// pprof even there only with PUSHPIPE_PPROF; the API's own port answers
// them as unknown routes (after authentication), PUSHPIPE_PPROF or not.
func TestNoOpsOnTheAPIPort(t *testing.T) {
	t.Setenv(pipeline.PprofEnv, "1")
	a := newSecAPI(t, Config{Auth: secAuth()}, false)
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/cmdline", "/healthz", "/readyz"} {
		if r := a.call("GET", path, "", ""); r.status != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", path, r.status)
		}
		if r := a.call("GET", path, "", "Bearer "+secAdmin); r.status != http.StatusNotFound {
			t.Errorf("GET %s with the operator token: %d %.80s, want 404", path, r.status, r.body)
		}
	}
}
