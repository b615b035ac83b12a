package console_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestWrongMethodIs405: a console page asked with a method it does not take
// (a GET of /ui/signout typed in the address bar, a PUT from a script) is a
// 405 whose Allow header and page name the methods it takes, HEAD beside
// GET as net/http's ServeMux writes it; it was the 404 of a page that does
// not exist. A path of no page stays 404.
func TestWrongMethodIs405(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	tests := []struct {
		method, path string
		wantStatus   int
		wantAllow    string
		wantText     string
	}{
		{"GET", "/ui/signout", http.StatusMethodNotAllowed, "POST", "/ui/signout takes POST, not GET."},
		{"GET", "/ui/deadletters/x/retry", http.StatusMethodNotAllowed, "POST", "/ui/deadletters/x/retry takes POST, not GET."},
		{"PUT", "/ui/campaigns", http.StatusMethodNotAllowed, "GET, HEAD, POST", "/ui/campaigns takes GET, HEAD, POST, not PUT."},
		{"DELETE", "/ui/campaigns/c1/cancel", http.StatusMethodNotAllowed, "GET, HEAD, POST", "/ui/campaigns/c1/cancel takes GET, HEAD, POST, not DELETE."},
		{"PUT", "/ui/signin", http.StatusMethodNotAllowed, "GET, HEAD, POST", "/ui/signin takes GET, HEAD, POST, not PUT."},
		{"POST", "/ui/pipeline", http.StatusMethodNotAllowed, "GET, HEAD", "/ui/pipeline takes GET, HEAD, not POST."},
		{"POST", "/ui/static/console.js", http.StatusMethodNotAllowed, "GET, HEAD", "/ui/static/console.js takes GET, HEAD, not POST."},
		{"POST", "/ui/", http.StatusMethodNotAllowed, "GET, HEAD", "/ui/ takes GET, HEAD, not POST."},
		{"GET", "/ui/nope", http.StatusNotFound, "", "No such page: /ui/nope"},
		{"PUT", "/ui/campaigns/c1/nope", http.StatusNotFound, "", "No such page: /ui/campaigns/c1/nope"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequestWithContext(t.Context(), tt.method, b.url+tt.path, nil)
		status, body := b.do(req)
		if status != tt.wantStatus || b.allow != tt.wantAllow || !strings.Contains(body, tt.wantText) {
			t.Errorf("%s %s: %d Allow %q, want %d Allow %q and a page saying %q", tt.method, tt.path, status, b.allow,
				tt.wantStatus, tt.wantAllow, tt.wantText)
		}
	}
}
