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

// Two receivers, two groups on results: the runner's lag and pending
// gauges carry the group, so a receiver that refuses everything shows its
// backlog apart from one that keeps up. Under stage="webhook" alone, the
// two runners set one series, and a dashboard or alert summing them could
// not tell which receiver was behind.
func TestRunnerMetricsTellReceiversApart(t *testing.T) {
	// Mostly waiting for the gauges' refresh (every 5 s, pipeline's
	// maintainLoop), on keys and a registry of its own.
	t.Parallel()
	f := newFixture(t)
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	t.Cleanup(refuse.Close)
	accept := newIDReceiver(t)
	reg := prometheus.NewRegistry()
	metrics := pipeline.NewMetrics(reg) // one registry, as Prometheus sums two processes' series
	log := zerolog.Nop()
	run := func(group, url string) {
		h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, Group: group, URL: url + "/hook",
			Secrets: [][]byte{[]byte("secret-0123456789abcdef")}, Attempts: 1, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		// ClaimIdle past the test: what the refused receiver read stays pending.
		r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Group: group, Stream: pipeline.StreamResults, Consumer: group + "1",
			ClaimIdle: time.Hour, MaxDeliveries: 1000, Block: 50 * time.Millisecond}, h, log, metrics)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		pipelinetest.Eventually(t, 10*time.Second, group+" ready", r.Ready)
	}
	run("keeps-up", accept.srv.URL)
	run("refuses", refuse.URL)
	f.emitEvents("c1", 12, pipeline.OutcomeSent)
	pipelinetest.Eventually(t, 10*time.Second, "the accepting receiver got every event", func() bool { return accept.total() == 12 })

	tests := []struct {
		group   string
		backlog bool
	}{
		{"keeps-up", false},
		{"refuses", true},
	}
	// The gauges are refreshed every 5 s: wait for both to show.
	var got map[string]float64
	pipelinetest.Eventually(t, 30*time.Second, "lag and pending per group", func() bool {
		got = backlogByGroup(t, reg)
		for _, tt := range tests {
			if v, ok := got[tt.group]; !ok || (v > 0) != tt.backlog {
				return false
			}
		}
		return true
	})
	for _, tt := range tests {
		if v := got[tt.group]; (v > 0) != tt.backlog {
			t.Errorf("group %s: lag+pending %v, want backlog %v (all: %v)", tt.group, v, tt.backlog, got)
		}
	}
}

// backlogByGroup adds up pushpipe_group_lag and pushpipe_group_pending
// over partitions, by their group label.
func backlogByGroup(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if n := mf.GetName(); n != "pushpipe_group_lag" && n != "pushpipe_group_pending" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "group" {
					out[l.GetValue()] += m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}
