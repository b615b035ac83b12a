package webhook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// A batch whose POST is slow, or backs off after a failed one, is not
// stuck: without a --rate cap it moved (Batch.Progress) only between
// POSTs, so a receiver slower than StuckAfter (under a long --timeout), or
// a backoff longer (under a long --retry-max), read the webhook stuck and
// an operator restarted one that worked. Here StuckAfter is 2 s, the first
// POST is refused at once and backs off 2.5 to 5 s, the second takes 3 s.
func TestSlowPostsAreNotStuck(t *testing.T) {
	t.Parallel()
	const stuckAfter = 2 * time.Second
	f := newFixture(t)
	var posts, accepted atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if posts.Add(1) == 1 {
			http.Error(w, "not yet", http.StatusInternalServerError)
			return
		}
		time.Sleep(3 * time.Second)
		accepted.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, URL: srv.URL + "/hook", Secrets: [][]byte{[]byte(testSecret)},
		Attempts: 2, RetryBase: 5 * time.Second, RetryMax: 5 * time.Second, Timeout: 10 * time.Second, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Stream: pipeline.StreamResults, Consumer: "w1",
		Concurrency: 1, Block: 50 * time.Millisecond, AliveEvery: 100 * time.Millisecond, StuckAfter: stuckAfter, NewGroupAt: "0"}, h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
	f.emitEntries("c1", 1, 1, 1)
	deadline := time.Now().Add(60 * time.Second)
	for accepted.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no POST accepted in a minute (%d made)", posts.Load())
		}
		st, err := pipeline.Status(t.Context(), f.rdb, f.keys, pipeline.StreamResults)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range st[0].Groups {
			if g.State == pipeline.StateStuck {
				t.Fatalf("the webhook reads stuck at POST %d, its batch backing off or waiting for a slow receiver", posts.Load())
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}
