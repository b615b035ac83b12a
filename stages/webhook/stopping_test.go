package webhook_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// TestStoppingWebhookStartsNoMorePosts: a webhook told to stop (its
// runner's context canceled: pipeline.Batch.Stopping) while it POSTs a
// batch one event a request to a slow receiver starts no more POSTs: the
// one in flight finishes, the rest of the batch stays pending, and a
// process started after it delivers every event (at least once). Before,
// it POSTed on through the batches in hand (95 requests here) before its
// runner returned.
func TestStoppingWebhookStartsNoMorePosts(t *testing.T) {
	const events = 400 // 50 a partition: a batch of 50 POSTs, 5 s at the slow receiver
	f := newFixture(t)
	var (
		mu       sync.Mutex
		arrivals []time.Time
		got      = map[string]bool{}
		slow     atomic.Bool
	)
	slow.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		var body struct {
			Events []struct {
				ID string `json:"id"`
			} `json:"events"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if slow.Load() {
			time.Sleep(100 * time.Millisecond)
		}
		mu.Lock()
		for _, ev := range body.Events {
			got[ev.ID] = true
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	postsAfter := func(at time.Time) (n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range arrivals {
			if a.After(at) {
				n++
			}
		}
		return n
	}
	delivered := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
	run := func(consumer string, concurrency int) (stop func()) {
		h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, URL: srv.URL + "/hook", Secrets: [][]byte{[]byte("secret-0123456789abcdef")},
			Batch: 1, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Stream: pipeline.StreamResults, Consumer: consumer,
			Concurrency: concurrency, BatchSize: 100, ClaimIdle: time.Second, Block: 100 * time.Millisecond,
			ShutdownTimeout: 30 * time.Second}, h, log, nil)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		pipelinetest.Eventually(t, 10*time.Second, consumer+" ready", r.Ready)
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: %v", consumer, err)
			}
		}
	}
	f.emitEvents("c1", events, pipeline.OutcomeSent)
	stop := run("w1", 1)
	pipelinetest.Eventually(t, 20*time.Second, "POSTs under way", func() bool { return postsAfter(time.Time{}) >= 5 })
	stopped := time.Now()
	stop()
	// The POST in flight at the stop may reach the receiver just after it.
	if n := postsAfter(stopped); n > 1 {
		t.Errorf("%d POSTs reached the receiver after the stop, want at most the one in flight", n)
	}
	if n := delivered(); n >= events {
		t.Fatalf("every event delivered before the stop (%d): the test proves nothing", n)
	}

	slow.Store(false)
	defer run("w2", 4)()
	pipelinetest.Eventually(t, 60*time.Second, "every event delivered by the next process", func() bool { return delivered() == events })
}
