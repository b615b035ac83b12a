package api

import (
	"net/http"
	"testing"
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
