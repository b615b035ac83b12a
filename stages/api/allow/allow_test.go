package allow

import (
	"net/http/httptest"
	"slices"
	"testing"
)

// TestOf: a path's methods in pattern order and its Allow header as
// net/http's ServeMux writes it (sorted, HEAD beside GET); nothing for a
// path no pattern has, or one whose pattern names no method.
func TestOf(t *testing.T) {
	x := New([]string{"POST /v1/campaigns", "GET /v1/campaigns", "GET /v1/campaigns/{id}", "DELETE /v1/devices/{token}", "/ui/"})
	tests := []struct {
		path    string
		methods []string
		allow   string
	}{
		{"/v1/campaigns", []string{"POST", "GET"}, "GET, HEAD, POST"},
		{"/v1/campaigns/c1", []string{"GET"}, "GET, HEAD"},
		{"/v1/devices/abc", []string{"DELETE"}, "DELETE"},
		{"/v1/nothing", nil, ""},
		{"/ui/campaigns", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			ms, allow := x.Of(httptest.NewRequest("PUT", tt.path, nil))
			if !slices.Equal(ms, tt.methods) || allow != tt.allow {
				t.Errorf("Of(PUT %s) = %v, %q; want %v, %q", tt.path, ms, allow, tt.methods, tt.allow)
			}
		})
	}
}
