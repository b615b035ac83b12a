package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// apiMetrics count requests per route and status code, and time them, so an
// operator sees the API's 4xx/5xx mix and latency next to the stages' lag.
type apiMetrics struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

func newAPIMetrics(reg prometheus.Registerer) *apiMetrics {
	m := &apiMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pushpipe", Subsystem: "api",
			Name: "requests_total", Help: "API requests by route and status code."}, []string{"route", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "pushpipe", Subsystem: "api",
			Name: "request_seconds", Help: "API request latency by route.", Buckets: prometheus.DefBuckets}, []string{"route"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.seconds)
	}
	return m
}

// instrument wraps one route's handler; the route label is the pattern, never
// the raw path (which would carry tokens and ids and explode cardinality).
func (m *apiMetrics) instrument(pattern string, h http.Handler) http.Handler {
	labels := prometheus.Labels{"route": pattern}
	return promhttp.InstrumentHandlerCounter(m.requests.MustCurryWith(labels),
		promhttp.InstrumentHandlerDuration(m.seconds.MustCurryWith(labels), h))
}
