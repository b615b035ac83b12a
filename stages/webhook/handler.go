package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
)

// Handler POSTs the result events of a batch of results entries (each holds
// the events of a group of devices): it parses them (a malformed entry is
// dead-lettered with its reason), drops the outcomes the filter leaves out,
// and POSTs the rest in requests of at most Batch events (and the rate
// cap), each under the cap. A request that fails after Attempts
// leaves its events and the rest of the batch unacknowledged: the runner
// redelivers them after --claim-idle and dead-letters them after
// --max-deliveries. Delivery is at least once: a batch is POSTed again whole
// when its delivery failed, and receivers dedupe by event id.
type Handler struct {
	cfg     Config
	client  *http.Client
	cap     *pipeline.RateCap
	safeURL string
	log     zerolog.Logger
	metrics *metrics
}

// New builds the stage from cfg; it refuses a URL that is not http(s) and
// a missing secret.
func New(cfg Config) (*Handler, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// The default transport's system roots: SSL_CERT_FILE and
	// SSL_CERT_DIR work. Enough idle connections for every handler.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	h := &Handler{cfg: cfg, client: &http.Client{Transport: tr, Timeout: cfg.Timeout},
		cap:     pipeline.NewRateCap(cfg.Redis, cfg.Keys.RateCap("webhook"), cfg.Rate),
		safeURL: SafeURL(cfg.URL), metrics: newMetrics(cfg.Metrics)}
	h.log = cfg.Log.With().Str("url", h.safeURL).Logger()
	return h, nil
}

// Handle implements pipeline.Handler.
func (h *Handler) Handle(ctx context.Context, b *pipeline.Batch) error {
	var (
		events []json.RawMessage // each event's JSON, cut from buf
		idx    []int             // the entry of each event
		buf    []byte
		ends   []int
	)
	for i, e := range b.Entries {
		evs, err := pipeline.ParseResults(e.Fields)
		if err != nil {
			b.DeadLetter(i, err)
			continue
		}
		for _, ev := range evs {
			if len(h.cfg.Outcomes) > 0 && !slices.Contains(h.cfg.Outcomes, ev.Outcome) {
				h.metrics.events.WithLabelValues("filtered").Inc()
				continue // the receiver does not want it
			}
			// One buffer for the batch's JSON: an allocation per batch,
			// not per event.
			buf = ev.AppendJSON(buf)
			ends = append(ends, len(buf))
			idx = append(idx, i)
		}
	}
	events = make([]json.RawMessage, len(ends))
	for k, end := range ends {
		start := 0
		if k > 0 {
			start = ends[k-1]
		}
		events[k] = buf[start:end:end]
	}
	per := h.cfg.Batch
	if m := h.cap.Max(); m > 0 {
		per = min(per, m)
	}
	for start := 0; start < len(events); start += per {
		end := min(start+per, len(events))
		err := h.post(ctx, b, events[start:end])
		if err == nil {
			h.metrics.events.WithLabelValues("delivered").Add(float64(end - start))
			continue
		}
		if ctx.Err() != nil || b.IsLost() {
			return err // shutting down or no longer ours: left pending, nothing acked
		}
		// Out of attempts: the entries not wholly delivered wait for their
		// next delivery, which POSTs their events again (the receiver
		// dedupes by id); the entries delivered already are acked.
		h.log.Warn().Err(err).Int("events", len(events)-start).Msg("webhook delivery failed; left for redelivery")
		for _, i := range idx[start:] {
			b.Fail(i, err)
		}
		return nil
	}
	return nil
}

// errLost ends a delivery whose batch another consumer took.
var errLost = errors.New("batch no longer ours; left to its new owner")

type metrics struct {
	events *prometheus.CounterVec
	posts  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pushpipe", Subsystem: "webhook", Name: "events_total",
			Help: "Result events by what became of them: delivered (2xx) or filtered."}, []string{"result"}),
		posts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pushpipe", Subsystem: "webhook", Name: "posts_total",
			Help: "POSTs to the webhook URL by status code (0: no answer)."}, []string{"code"}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.posts)
	}
	return m
}
