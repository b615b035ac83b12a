package deliver

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushpipe/pushpipe/pipeline"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// metrics count every way a device leaves deliver: sends by provider,
// outcome (sent, invalid, failed, retry, failed_campaign, expired) and lane
// (express: direct messages and high-priority campaigns; bulk: the rest),
// retries scheduled and users given up on.
type metrics struct {
	sends     *prometheus.CounterVec
	retries   prometheus.Counter
	deadUsers prometheus.Counter
	inFlight  prometheus.Gauge
	// permitsLate counts rate-limit permits dropped because this process
	// could not use them in time (a busy machine; see limiter).
	permitsLate prometheus.Counter
	// acceptToSend times, per lane, a campaign's or message's acceptance by
	// the API to its first and its last provider acceptance in each deliver
	// batch (edge first|last): a message's own first and last sends are the
	// smallest and the largest of its batches'.
	acceptToSend *prometheus.HistogramVec
	// expressWait times an express round's oldest entry from its write to
	// the stream to the round's start, in Redis's clock: its read, the wait
	// for a handler, and the lookups before any send (the campaign's row
	// and the users' tokens in PostgreSQL, the sent marks in Redis). Timed
	// per step at 60 messages/s x 50 (#15, session 45), the lookups were
	// most of it and the handler wait almost none, unless the box was
	// overloaded. High while accept_to_send is high: deliver is short (of
	// processes or CPU); low: the time goes to the sends themselves.
	expressWait prometheus.Histogram
	// rateCap is the cluster-wide cap in force per provider, app and lane
	// (limiter): below --tps (or the app's tps) while the provider refuses
	// sends over its rate, climbing back after.
	rateCap *prometheus.GaugeVec

	// providerSeconds times provider requests per provider and app
	// (sendOne): the provider's own latency, which deliver's batch time
	// mixes with marks and queries.
	providerSeconds *prometheus.HistogramVec
	// resultEvents counts the result events deliver appended to the results
	// streams, by outcome: what the webhook stage has to consume
	// (pushpipe_webhook_events_total), counted once each, as written.
	resultEvents *prometheus.CounterVec
	events       [push.Failed + 1]prometheus.Counter // resultEvents by terminal outcome

	// byOutcome caches the sends counters of every provider, outcome and
	// lane: a label lookup per send is a hash of the labels.
	byOutcome map[sendLabels]prometheus.Counter
}

type sendLabels struct {
	provider string
	outcome  push.Outcome
	lane     pipeline.Lane
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pushpipe", Subsystem: "deliver",
			Name: "sends_total", Help: "Devices handled, by provider, outcome and lane (express: messages and high-priority campaigns; bulk: campaigns)."},
			[]string{"provider", "outcome", "lane"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pushpipe", Subsystem: "deliver",
			Name: "retries_scheduled_total", Help: "Users scheduled for another send round after a transient failure."}),
		deadUsers: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pushpipe", Subsystem: "deliver",
			Name: "users_dead_lettered_total", Help: "Users sent to the DLQ after their retry budget was spent."}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "pushpipe", Subsystem: "deliver",
			Name: "in_flight", Help: "Provider requests in flight."}),
		permitsLate: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pushpipe", Subsystem: "deliver",
			Name: "rate_permits_late_total", Help: "Rate-limit permits dropped because they could not be used in time (a busy machine)."}),
		acceptToSend: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "pushpipe", Subsystem: "deliver",
			Name: "accept_to_send_seconds", Help: "From the API's acceptance of a message or campaign to a deliver batch's first and last send of it, by lane.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16)}, []string{"lane", "edge"}),
		expressWait: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "pushpipe", Subsystem: "deliver",
			Name: "express_wait_seconds", Help: "From an express entry's write to its stream to the start of its deliver round (the oldest of a round's entries): its read, the wait for a handler, and the round's lookups (campaign row, tokens, sent marks).",
			Buckets: expressWaitBuckets}),
		rateCap: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "pushpipe", Subsystem: "deliver",
			Name: "rate_cap", Help: "Sends a second the cluster-wide cap allows now, by provider, app and lane: --tps's share (or the app's tps), less while the provider refuses sends over its rate."},
			[]string{"provider", "app", "lane"}),
		providerSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "pushpipe", Subsystem: "deliver",
			Name: "provider_request_seconds", Help: "Provider requests (one APNs HTTP/2 request, one FCM v1 send) from their start to the provider's answer or the transport's error, by provider and app.",
			Buckets: providerBuckets}, []string{"provider", "app"}),
		resultEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pushpipe", Subsystem: "deliver",
			Name: "result_events_total", Help: "Result events appended to the results streams for the webhook stage, by outcome (sent, invalid, failed); none with --no-results."},
			[]string{"outcome"}),
	}
	m.byOutcome = map[sendLabels]prometheus.Counter{}
	for _, p := range []string{"apns", "fcm", "none"} {
		for _, o := range []push.Outcome{push.Sent, push.Retry, push.Invalid, push.Failed} {
			for _, l := range []pipeline.Lane{pipeline.Bulk, pipeline.Express} {
				m.byOutcome[sendLabels{p, o, l}] = m.sends.WithLabelValues(p, o.String(), l.String())
			}
		}
	}
	// Every outcome from the start, at 0: a rate over a series that
	// appears with its first event reads as no data, not as none written.
	for _, o := range []push.Outcome{push.Sent, push.Invalid, push.Failed} {
		m.events[o] = m.resultEvents.WithLabelValues(o.String())
	}
	if reg != nil {
		reg.MustRegister(m.sends, m.retries, m.deadUsers, m.inFlight, m.permitsLate, m.acceptToSend, m.expressWait, m.rateCap,
			m.providerSeconds, m.resultEvents)
	}
	return m
}

// providerBuckets are pushpipe_deliver_provider_request_seconds's: 1 ms to
// 32 s, doubling. APNs and FCM answer in tens to hundreds of milliseconds;
// seconds are a provider in trouble, and 32 s is past the senders' 30 s
// request timeout, so timeouts land in the last bucket.
var providerBuckets = prometheus.ExponentialBuckets(0.001, 2, 16)

// eventsWritten counts n result events of outcome o.
func (m *metrics) eventsWritten(o push.Outcome, n int64) {
	if n > 0 && o >= push.Sent && o <= push.Failed && m.events[o] != nil {
		m.events[o].Add(float64(n))
	}
}

// expressWaitBuckets are pushpipe_deliver_express_wait_seconds's: 1 ms to
// 16 s, doubling, around the milliseconds a message is meant to take.
var expressWaitBuckets = prometheus.ExponentialBuckets(0.001, 2, 15)

// watchYield exports the bulk lane's in-flight limit: below --in-flight
// while it gives way to the express lane.
func (m *metrics) watchYield(reg prometheus.Registerer, y *yield) {
	if reg == nil {
		return
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "pushpipe", Subsystem: "deliver",
		Name: "bulk_in_flight_limit", Help: "The bulk lane's provider requests in flight allowed now: below --in-flight while it yields to late express entries."},
		func() float64 { return float64(y.limit(time.Now())) }))
}

// sent is the sends counter of provider, outcome and lane.
func (m *metrics) sent(provider string, o push.Outcome, l pipeline.Lane) prometheus.Counter {
	if c, ok := m.byOutcome[sendLabels{provider, o, l}]; ok {
		return c
	}
	return m.sends.WithLabelValues(provider, o.String(), l.String())
}

// observeSpan records, for each campaign of a batch's targets, the time from
// its acceptance to the batch's first send (firstNs, unix ns; 0 when nothing
// was sent) and to now, when its sends are over.
func (m *metrics) observeSpan(lane pipeline.Lane, firstNs int64, targets []target) {
	if firstNs == 0 {
		return
	}
	now := time.Now()
	var last *campaign
	for _, t := range targets {
		if t.c == last || t.c.accepted.IsZero() {
			continue
		}
		last = t.c
		m.acceptToSend.WithLabelValues(lane.String(), "first").Observe(time.Unix(0, firstNs).Sub(t.c.accepted).Seconds())
		m.acceptToSend.WithLabelValues(lane.String(), "last").Observe(now.Sub(t.c.accepted).Seconds())
	}
}
