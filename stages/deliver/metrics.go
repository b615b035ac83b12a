package deliver

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// metrics count every way a device leaves deliver: sends by provider and
// outcome (sent, invalid, failed, retry, failed_campaign), retries scheduled
// and users given up on.
type metrics struct {
	sends     *prometheus.CounterVec
	retries   prometheus.Counter
	deadUsers prometheus.Counter
	inFlight  prometheus.Gauge
	// permitsLate counts rate-limit permits dropped because this process
	// could not use them in time (a busy machine; see limiter).
	permitsLate prometheus.Counter

	// byOutcome caches the sends counters of every provider and terminal
	// outcome: a label lookup per send is a hash of both labels.
	byOutcome map[sendLabels]prometheus.Counter
}

type sendLabels struct {
	provider string
	outcome  push.Outcome
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pushpipe", Subsystem: "deliver",
			Name: "sends_total", Help: "Devices handled, by provider and outcome."}, []string{"provider", "outcome"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pushpipe", Subsystem: "deliver",
			Name: "retries_scheduled_total", Help: "Users scheduled for another send round after a transient failure."}),
		deadUsers: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pushpipe", Subsystem: "deliver",
			Name: "users_dead_lettered_total", Help: "Users sent to the DLQ after their retry budget was spent."}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "pushpipe", Subsystem: "deliver",
			Name: "in_flight", Help: "Provider requests in flight."}),
		permitsLate: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pushpipe", Subsystem: "deliver",
			Name: "rate_permits_late_total", Help: "Rate-limit permits dropped because they could not be used in time (a busy machine)."}),
	}
	m.byOutcome = map[sendLabels]prometheus.Counter{}
	for _, p := range []string{"apns", "fcm", "none"} {
		for _, o := range []push.Outcome{push.Sent, push.Retry, push.Invalid, push.Failed} {
			m.byOutcome[sendLabels{p, o}] = m.sends.WithLabelValues(p, o.String())
		}
	}
	if reg != nil {
		reg.MustRegister(m.sends, m.retries, m.deadUsers, m.inFlight, m.permitsLate)
	}
	return m
}

// sent is the sends counter of provider and outcome.
func (m *metrics) sent(provider string, o push.Outcome) prometheus.Counter {
	if c, ok := m.byOutcome[sendLabels{provider, o}]; ok {
		return c
	}
	return m.sends.WithLabelValues(provider, o.String())
}
