package webhook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// The stage's metrics count what became of the events, labelled with the
// receiver's group: filtered ones, those of a delivery that failed (an
// alert's signal: the receiver refuses), then delivered ones once it
// accepts, and the POSTs by status code.
func TestMetricsCountEachReceiversEvents(t *testing.T) {
	f := newFixture(t)
	var code atomic.Int32
	code.Store(http.StatusServiceUnavailable)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(code.Load())) }))
	t.Cleanup(srv.Close)
	reg := prometheus.NewRegistry()
	log := zerolog.Nop()
	h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, Group: "analytics", URL: srv.URL + "/hook", Secrets: [][]byte{[]byte("secret-0123456789abcdef")},
		Outcomes: []string{pipeline.OutcomeFailed, pipeline.OutcomeInvalid}, Attempts: 1, Metrics: reg, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Group: "analytics", Stream: pipeline.StreamResults, Consumer: "w1",
		ClaimIdle: 300 * time.Millisecond, MaxDeliveries: 1000, Block: 50 * time.Millisecond}, h, log, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
	f.emitEvents("c1", 6, pipeline.OutcomeSent, pipeline.OutcomeInvalid) // 3 filtered, 3 posted
	pipelinetest.Eventually(t, 10*time.Second, "a failed delivery counted", func() bool {
		return strings.Contains(gather(t, reg), `pushpipe_webhook_events_total{group="analytics",result="failed"}`)
	})
	code.Store(http.StatusOK)
	pipelinetest.Eventually(t, 10*time.Second, "every posted event delivered", func() bool {
		return strings.Contains(gather(t, reg), `pushpipe_webhook_events_total{group="analytics",result="delivered"} 3`)
	})
	got := gather(t, reg)
	for _, want := range []string{
		`pushpipe_webhook_events_total{group="analytics",result="filtered"} 3`,
		`pushpipe_webhook_posts_total{code="503",group="analytics"}`,
		`pushpipe_webhook_posts_total{code="200",group="analytics"}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("metrics:\n%s\nwant %s", got, want)
		}
	}
}

// gather is the registry's text exposition.
func gather(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			b.WriteString(mf.GetName() + "{" + strings.Join(labels, ",") + "} " + strconv.FormatFloat(m.GetCounter().GetValue(), 'f', -1, 64) + "\n")
		}
	}
	return b.String()
}
