package bench

import (
	"math"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// A histogram scraped from a real /metrics gives its quantiles as bucket
// bounds, over what was counted between two scrapes.
func TestScrapedBucketsQuantile(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pushpipe_test_wait_seconds", Help: "test",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)})
	reg.MustRegister(h)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	h.Observe(30) // before the window: not counted
	before, err := scrapeBuckets(t.Context(), addr, "pushpipe_test_wait_seconds")
	if err != nil {
		t.Fatal(err)
	}
	for range 98 {
		h.Observe(0.003) // the 4 ms bucket
	}
	h.Observe(0.100) // 128 ms
	h.Observe(0.100)
	after, err := scrapeBuckets(t.Context(), addr, "pushpipe_test_wait_seconds")
	if err != nil {
		t.Fatal(err)
	}
	w := after.since(before)
	tests := []struct {
		q    float64
		want int64
	}{
		{0.5, 4},
		{0.98, 4},
		{0.99, 128},
		{1, 128},
	}
	for _, tt := range tests {
		if got := bucketMs(w.quantile(tt.q)); got != tt.want {
			t.Errorf("quantile %.2f: %d ms, want %d", tt.q, got, tt.want)
		}
	}
	if got := bucketMs(before.quantile(0.5)); got != -1 {
		t.Errorf("an observation past the last bound: %d, want -1 (past it)", got)
	}
	if !math.IsNaN(buckets{}.quantile(0.5)) {
		t.Error("nothing counted has a quantile")
	}
}
