package pipeline

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the runner's Prometheus series, per stage and partition.
type Metrics struct {
	Read         *prometheus.CounterVec
	Acked        *prometheus.CounterVec
	Claimed      *prometheus.CounterVec
	DeadLettered *prometheus.CounterVec
	Errors       *prometheus.CounterVec
	HandlerSecs  *prometheus.HistogramVec
	Lag          *prometheus.GaugeVec
	Pending      *prometheus.GaugeVec
	Trimmed      *prometheus.CounterVec
	Released     *prometheus.CounterVec
}

// NewMetrics registers the runner's metrics on reg (none when reg is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	labels := []string{"stage", "partition"}
	m := &Metrics{
		Read: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pushpipe", Name: "entries_read_total",
			Help: "Stream entries read by XREADGROUP."}, labels),
		Acked: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pushpipe", Name: "entries_acked_total",
			Help: "Stream entries acknowledged after their effects were durable."}, labels),
		Claimed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pushpipe", Name: "entries_claimed_total",
			Help: "Entries taken over from idle consumers with XAUTOCLAIM."}, labels),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pushpipe", Name: "entries_dead_lettered_total",
			Help: "Entries moved to the dead-letter stream."}, labels),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pushpipe", Name: "handler_errors_total",
			Help: "Batches whose handler returned an error."}, labels),
		HandlerSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "pushpipe", Name: "handler_seconds",
			Help: "Time spent in the stage handler per batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}, labels),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "pushpipe", Name: "group_lag",
			Help: "Entries not yet read by the stage's group."}, labels),
		Pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "pushpipe", Name: "group_pending",
			Help: "Entries read but not yet acknowledged by the stage's group."}, labels),
		Trimmed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pushpipe", Name: "entries_trimmed_total",
			Help: "Acknowledged entries removed after the retention window."}, labels),
		Released: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pushpipe", Name: "entries_released_total",
			Help: "Delayed entries (retries, scheduled campaigns) moved into their stream when due."}, labels),
	}
	if reg != nil {
		reg.MustRegister(m.Read, m.Acked, m.Claimed, m.DeadLettered, m.Errors, m.HandlerSecs, m.Lag, m.Pending, m.Trimmed, m.Released)
	}
	return m
}

func part(p int) string { return strconv.Itoa(p) }

func (m *Metrics) read(stage string, p, n int) {
	m.Read.WithLabelValues(stage, part(p)).Add(float64(n))
}
func (m *Metrics) acked(stage string, p, n int) {
	m.Acked.WithLabelValues(stage, part(p)).Add(float64(n))
}
func (m *Metrics) released(stage string, p, n int) {
	m.Released.WithLabelValues(stage, part(p)).Add(float64(n))
}
func (m *Metrics) claimed(stage string, p, n int) {
	m.Claimed.WithLabelValues(stage, part(p)).Add(float64(n))
}
func (m *Metrics) deadLettered(stage string, p, n int) {
	m.DeadLettered.WithLabelValues(stage, part(p)).Add(float64(n))
}
func (m *Metrics) handled(stage string, p int, d time.Duration, err error) {
	m.HandlerSecs.WithLabelValues(stage, part(p)).Observe(d.Seconds())
	if err != nil {
		m.Errors.WithLabelValues(stage, part(p)).Inc()
	}
}
