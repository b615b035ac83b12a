package webhook_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// A receiver answering 500 for a while is logged when it starts failing
// and when it accepts again, not on every delivery that failed: each
// handler's each failed delivery was a warning, ~300 a minute.
func TestFailingReceiverLogsQuietly(t *testing.T) {
	f := newFixture(t)
	var failing atomic.Bool
	failing.Store(true)
	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		if failing.Load() {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	var logs pipelinetest.Logs
	log := zerolog.New(&logs).Level(zerolog.WarnLevel)
	h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, URL: srv.URL + "/hook", Secrets: [][]byte{[]byte("secret-0123456789abcdef")},
		Attempts: 1, RetryBase: 10 * time.Millisecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Stream: pipeline.StreamResults, Consumer: "w1",
		ClaimIdle: 200 * time.Millisecond, MaxDeliveries: 1000, Block: 100 * time.Millisecond, BatchSize: 5}, h, log, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
	f.emitEvents("c1", 40, pipeline.OutcomeSent)
	pipelinetest.Eventually(t, 20*time.Second, "many failed POSTs", func() bool { return posts.Load() >= 30 })
	failing.Store(false)
	pipelinetest.Eventually(t, 20*time.Second, "the receiver said to accept again", func() bool {
		return strings.Contains(logs.String(), "webhook receiver accepts again")
	})

	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(l, "webhook") {
			lines = append(lines, l)
		}
	}
	if len(lines) > 3 {
		t.Fatalf("%d webhook lines for one failing spell, want the start and the end:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	var end struct {
		Failed int `json:"failed_deliveries"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &end); err != nil || end.Failed < 5 {
		t.Errorf("the last line %q does not count the failed deliveries (%v)", lines[len(lines)-1], err)
	}
}
