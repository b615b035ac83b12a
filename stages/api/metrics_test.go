package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Requests are counted per route pattern and status code: a refused call
// shows up as a 401 on its route, and the raw path (with ids) never becomes
// a label.
func TestRequestsAreCountedPerRoute(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(Config{Auth: Auth{AdminToken: "admin-token"}, Metrics: reg})
	for range 3 {
		s.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/campaigns/c-123", nil))
	}
	want := `
# HELP pushpipe_api_requests_total API requests by route and status code.
# TYPE pushpipe_api_requests_total counter
pushpipe_api_requests_total{code="401",route="GET /v1/campaigns/{id}"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pushpipe_api_requests_total"); err != nil {
		t.Fatal(err)
	}
}
