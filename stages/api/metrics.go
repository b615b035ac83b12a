package api

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// apiMetrics count requests per route and status code, and time them, so an
// operator sees the API's 4xx/5xx mix and latency next to the stages' lag.
type apiMetrics struct {
	requests       *prometheus.CounterVec
	seconds        *prometheus.HistogramVec
	messagesPurged prometheus.Counter // retention.go
}

func newAPIMetrics(reg prometheus.Registerer) *apiMetrics {
	m := &apiMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pushpipe", Subsystem: "api",
			Name: "requests_total", Help: "API requests by route and status code."}, []string{"route", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "pushpipe", Subsystem: "api",
			Name: "request_seconds", Help: "API request latency by route.", Buckets: prometheus.DefBuckets}, []string{"route"}),
		messagesPurged: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pushpipe", Subsystem: "api",
			Name: "messages_purged_total", Help: "Direct messages purged past --keep-messages after their expiry."}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.seconds, m.messagesPurged)
	}
	return m
}

// registerProgress exports the progress of the campaigns not over
// (campaign.ProgressMetrics) from the API, the process that serves it.
func registerProgress(cfg Config) {
	if cfg.Metrics != nil && cfg.Redis != nil && cfg.DB != nil {
		cfg.Metrics.MustRegister(campaign.NewProgressMetrics(cfg.Redis, cfg.DB, cfg.Keys))
	}
}

// instrument wraps one route's handler; the route label is the pattern, never
// the raw path (which would carry tokens and ids and explode cardinality).
// It does what promhttp's InstrumentHandlerCounter and Duration do, with
// each code's counter looked up once, on its first request: the two
// promhttp wrappers, a label hash per request each, were ~7% of a
// single-device write's CPU.
func (m *apiMetrics) instrument(pattern string, h http.Handler) http.Handler {
	seconds := m.seconds.WithLabelValues(pattern)
	var byCode [600]atomic.Pointer[counter]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := statusRecorder{ResponseWriter: w}
		h.ServeHTTP(&rec, r)
		seconds.Observe(time.Since(start).Seconds())
		code := rec.status()
		if code < 0 || code >= len(byCode) {
			m.requests.WithLabelValues(pattern, strconv.Itoa(code)).Inc()
			return
		}
		c := byCode[code].Load()
		if c == nil {
			c = &counter{m.requests.WithLabelValues(pattern, strconv.Itoa(code))}
			byCode[code].Store(c)
		}
		c.Inc()
	})
}

// count counts a request answered before reaching its route (a 401).
func (m *apiMetrics) count(pattern string, code int) {
	m.requests.WithLabelValues(pattern, strconv.Itoa(code)).Inc()
}

// unmatched is the route label of requests no route matches.
const unmatched = "unmatched"

type counter struct{ prometheus.Counter }

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// status is the code written; a handler that wrote nothing answered 200.
func (r *statusRecorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}
