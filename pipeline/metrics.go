package pipeline

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the runner's Prometheus series, per stage, consumer group and
// partition. The group tells apart the webhook's receivers, each a group of
// its own on results: under stage="webhook" alone two receivers' lags were
// added up, one stalled receiver hidden behind a quick one. It costs no
// series: a runner reads as one group, the five pipeline stages each as
// their fixed one.
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
	labels := []string{"stage", "group", "partition"}
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

// series are the label values of one stage label, group and partition, in
// NewMetrics' order.
func series(stage, group string, p int) []string { return []string{stage, group, part(p)} }

func (m *Metrics) read(lv []string, n int)     { m.Read.WithLabelValues(lv...).Add(float64(n)) }
func (m *Metrics) acked(lv []string, n int)    { m.Acked.WithLabelValues(lv...).Add(float64(n)) }
func (m *Metrics) released(lv []string, n int) { m.Released.WithLabelValues(lv...).Add(float64(n)) }
func (m *Metrics) claimed(lv []string, n int)  { m.Claimed.WithLabelValues(lv...).Add(float64(n)) }
func (m *Metrics) deadLettered(lv []string, n int) {
	m.DeadLettered.WithLabelValues(lv...).Add(float64(n))
}
func (m *Metrics) handled(lv []string, d time.Duration, err error) {
	m.HandlerSecs.WithLabelValues(lv...).Observe(d.Seconds())
	if err != nil {
		m.Errors.WithLabelValues(lv...).Inc()
	}
}
