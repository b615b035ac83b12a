package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync/atomic"
	"time"

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
// --max-deliveries. A stop leaves pending only the entries not wholly
// delivered (leavePending). Delivery is at least once: an entry's events
// are POSTed again when its delivery failed or was cut short, and
// receivers dedupe by event id. Results flow at the rate the receiver
// chooses: a pause it asks of one process (a Retry-After, a 429 or 503)
// holds back every process of the group until it is over (pause.go), a
// batch in hand or claimed meanwhile included.
type Handler struct {
	cfg     Config
	client  *http.Client
	cap     *pipeline.RateCap
	safeURL string
	quiet   atomic.Int64 // post.go: no POST starts before this (Unix ns), a receiver's Retry-After
	// pause.go: until when (Unix ns) POSTs skip the group's pause in
	// Redis, which did not answer; 0 while it does.
	pauseAway atomic.Int64
	log       zerolog.Logger
	failing   *failing // quiets the log while the receiver fails
	metrics   *metrics
}

// New builds the stage from cfg, its zero settings defaulted; it refuses
// what Validate refuses, and no Redis or no secret.
func New(cfg Config) (*Handler, error) {
	cfg.defaults()
	errs := []error{cfg.Validate()}
	if cfg.Redis == nil {
		errs = append(errs, errors.New("no Redis client"))
	}
	if len(cfg.Secrets) == 0 {
		errs = append(errs, errors.New("no secret: give --secret-file, a file with one secret a line"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// The default transport's system roots: SSL_CERT_FILE and
	// SSL_CERT_DIR work. Enough idle connections for every handler.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	// A redirect is answered, not followed: the client would re-send a
	// 301, 302 or 303 as a GET without the body, and that GET's 2xx would
	// ack events the receiver never got. A 3xx retries like any non-2xx.
	noRedirects := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	h := &Handler{cfg: cfg, client: &http.Client{Transport: tr, Timeout: cfg.Timeout, CheckRedirect: noRedirects},
		cap:     pipeline.NewRateCap(cfg.Redis, cfg.Keys.RateCap(rateCapName(cfg.Group)), cfg.Rate),
		safeURL: SafeURL(cfg.URL), metrics: newMetrics(cfg.Metrics, cfg.Group)}
	h.log = cfg.Log.With().Str("url", h.safeURL).Str("group", cfg.Group).Logger()
	h.failing = &failing{log: h.log, now: time.Now,
		record: func(f Failure) {
			f.Group = cfg.Group
			if err := recordFailure(cfg.Redis, cfg.Keys, f); err != nil {
				h.log.Debug().Err(err).Msg("could not record the receiver's failure for status")
			}
		},
		clear: func() {
			if err := clearFailure(cfg.Redis, cfg.Keys, cfg.Group); err != nil {
				h.log.Debug().Err(err).Msg("could not clear the receiver's failure for status")
			}
		}}
	if why := cleartext(cfg.URL); why != "" {
		h.log.Warn().Msg(why)
	}
	for i, sec := range cfg.Secrets {
		if len(sec) < MinSecret {
			// A warning, not a refusal: beside a long secret (Validate
			// refuses short ones alone), a short one is a rotation
			// under way, the receiver still verifying with it.
			h.log.Warn().Int("secret", i+1).Int("bytes", len(sec)).Msgf("a secret of %s is short enough to guess from one signed POST "+
				"(whoever sees one can then sign events of their own); use at least %d random characters (openssl rand -hex 32): "+
				"add it as a line, switch the receiver to it, then remove the short one", cfg.flag("secret-file"), MinSecret)
		}
	}
	return h, nil
}

// MinSecret is the shortest signing secret New takes without a warning,
// and the length one of the secrets must reach: the API's own minimum for
// its tokens.
const MinSecret = 16

// cleartext says what goes unencrypted to a plain-http URL off this
// machine, "" for https or a loopback host. An http URL stays allowed (a
// receiver beside the process, a sidecar), but every POST carries device
// tokens, and a URL's credentials go as Basic auth: the operator should
// know.
func cleartext(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return ""
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return ""
	}
	why := "webhook URL is plain http: every POST's events (device tokens included) cross the network unencrypted"
	if u.User != nil {
		why += ", and so do the URL's credentials (Basic auth)"
	}
	return why + "; use https"
}

// rateCapName names a group's --rate cap: each receiver has its own rate,
// and the first group's keeps the name it had before groups.
func rateCapName(group string) string {
	if group == DefaultGroup {
		return "webhook"
	}
	return "webhook:" + group
}

// Handle implements pipeline.Handler.
func (h *Handler) Handle(ctx context.Context, b *pipeline.Batch) error {
	var (
		events []pipeline.ResultEvent
		idx    []int // the entry of each event
		size   int   // of the events' JSON, about
	)
	for i, e := range b.Entries {
		evs, err := pipeline.ParseResults(e.Fields)
		if err != nil {
			b.DeadLetter(i, pipeline.BadInput(err))
			continue
		}
		for _, ev := range evs {
			if len(h.cfg.Outcomes) > 0 && !slices.Contains(h.cfg.Outcomes, ev.Outcome) {
				h.metrics.events.WithLabelValues("filtered").Inc()
				continue // the receiver does not want it
			}
			events = append(events, ev)
			idx = append(idx, i)
			size += jsonFixed + len(ev.ID) + len(ev.Campaign) + len(ev.Message) + len(ev.App) + len(ev.Token) + len(ev.Reason)
		}
	}
	per := h.cfg.Batch
	if m := h.cap.Max(); m > 0 {
		per = min(per, m)
	}
	// One buffer for every request's body, each written once, in place:
	// the webhook's work per event is its JSON, nothing copied after.
	buf := make([]byte, 0, size+64*len(events)/max(per, 1)+64)
	for start := 0; start < len(events); start += per {
		end := min(start+per, len(events))
		body := len(buf)
		buf = append(buf, `{"events":[`...)
		for k, ev := range events[start:end] {
			if k > 0 {
				buf = append(buf, ',')
			}
			buf = ev.AppendJSON(buf)
		}
		buf = append(buf, "]}"...)
		err := h.post(ctx, b, buf[body:len(buf):len(buf)], end-start)
		if err == nil {
			h.metrics.events.WithLabelValues("delivered").Add(float64(end - start))
			h.failing.ok()
			continue
		}
		if b.IsLost() || errors.Is(err, errLost) {
			// No longer ours: the new owner POSTs every event again, and
			// acks.
			return err
		}
		if errors.Is(err, errStopping) || ctx.Err() != nil {
			// Cut off past ShutdownTimeout too (the POST in flight
			// cancelled, its events maybe taken): the runner still commits
			// a batch that returns (settleTimeout), so what the receiver
			// answered 2xx is acked. Returning the error left the whole
			// batch pending, POSTed again after the restart.
			h.leavePending(b, idx[start:], len(events)-start)
			return nil
		}
		// Out of attempts: the entries not wholly delivered wait for their
		// next delivery, which POSTs their events again (the receiver
		// dedupes by id); the entries delivered already are acked.
		h.failing.fail(err, len(events)-start)
		h.metrics.events.WithLabelValues("failed").Add(float64(len(events) - start))
		for _, i := range idx[start:] {
			b.Fail(i, err)
		}
		return nil
	}
	return nil
}

// leavePending settles a batch at a stop (errStopping, which no POST
// follows, or the cut at ShutdownTimeout, which ended the POST in flight):
// the entries of idx (the events not POSTed, or not answered
// 2xx) are left pending for whoever claims them, and the runner acks the
// rest, every event of which the receiver took. Acking those is right even
// if the lease ran out and another consumer claimed them meanwhile: it
// POSTs them again anyway, and its ack finds them acked. Returning the
// error instead left the whole batch pending, and the next process POSTed
// again what had been delivered: at each rolling restart, a burst of
// duplicates of up to a batch per handler. An entry with an event in idx
// stays pending whole, though some of its events went out: the runner acks
// entries, not events.
func (h *Handler) leavePending(b *pipeline.Batch, idx []int, events int) {
	entries := 0
	for k, i := range idx {
		if k == 0 || i != idx[k-1] { // idx ascends: an entry's events are adjacent
			b.Fail(i, errStopping)
			entries++
		}
	}
	h.metrics.events.WithLabelValues("pending").Add(float64(events))
	h.log.Info().Int("events", events).Int("entries", entries).Int("batch", len(b.Entries)).
		Msg("shutting down: events not yet delivered left pending for whoever claims them; the entries delivered are acked")
}

// jsonFixed bounds an event's JSON less its strings: the keys, quotes,
// commas, the platform, outcome and two numbers.
const jsonFixed = 128

// errLost ends a delivery whose batch another consumer took.
var errLost = errors.New("batch no longer ours; left to its new owner")

// errStopping ends a delivery when the process stops (stopping), or whose
// lease ran out while it stops: its undelivered entries are left pending
// (leavePending), and the runner gives back their delivery, a stop being
// no failure of theirs (pipeline.ErrStopping).
var errStopping = pipeline.ErrStopping

type metrics struct {
	events *prometheus.CounterVec
	posts  *prometheus.CounterVec
}

// newMetrics labels the stage's metrics with its group: each receiver is a
// group (--group), and two receivers' processes beside each other in one
// Prometheus were told apart only by their pods.
func newMetrics(reg prometheus.Registerer, group string) *metrics {
	receiver := prometheus.Labels{"group": group}
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pushpipe", Subsystem: "webhook", Name: "events_total", ConstLabels: receiver,
			Help: "Result events by what became of them: delivered (2xx), filtered, failed (a delivery of them ran out of --attempts; counted again at each redelivery), " +
				"or pending (not delivered when the process stopped, left to whoever claims them)."}, []string{"result"}),
		posts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pushpipe", Subsystem: "webhook", Name: "posts_total", ConstLabels: receiver,
			Help: "POSTs to the webhook URL by status code (0: no answer)."}, []string{"code"}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.posts)
	}
	return m
}
