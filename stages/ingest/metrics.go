package ingest

import "github.com/prometheus/client_golang/prometheus"

// metrics count where each ingest entry went.
type metrics struct {
	events *prometheus.CounterVec
	purged *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{events: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "pushpipe", Subsystem: "ingest", Name: "events_total",
		Help: "Ingest entries by outcome: written (row inserted or changed), stale (not newer than the row), " +
			"collapsed (superseded by a later event of the same token in the batch), malformed (dead-lettered), " +
			"expired (a registration older than --keep-tombstones, dropped).",
	}, []string{"outcome"}),
		purged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pushpipe", Subsystem: "ingest", Name: "purged_total",
			Help: "Rows purged past --keep-tombstones: tombstones (deleted and invalidated devices), erasures (records of erased users).",
		}, []string{"what"})}
	if reg != nil {
		reg.MustRegister(m.events, m.purged)
	}
	return m
}

func (m *metrics) observe(malformed, expired, collapsed, stale, written int) {
	m.events.WithLabelValues("malformed").Add(float64(malformed))
	m.events.WithLabelValues("expired").Add(float64(expired))
	m.events.WithLabelValues("collapsed").Add(float64(collapsed))
	m.events.WithLabelValues("stale").Add(float64(stale))
	m.events.WithLabelValues("written").Add(float64(written))
}
