package webhook_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// A Retry-After is honoured (DESIGN, "Results and webhooks") when it
// answers a delivery's last attempt too: no POST of the process follows it
// before the time is up. The last attempt's was dropped, so the next
// batch's POST went out at once, into the receiver that had asked for a
// pause; with --attempts 1 no Retry-After was ever honoured. One handler
// (Concurrency 1), two batches (two partitions): the second's first POST
// follows the first's last 429, none in flight beside it.
func TestRetryAfterOfTheLastAttemptIsHonoured(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		attempts int // the receiver answers 429 to this many POSTs, then 204
	}{
		{"one attempt", 1},
		{"the second of two", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const retryAfter = time.Second
			f := newFixture(t)
			f.emitEntries("c1", 2, 10, 2)
			var (
				mu    sync.Mutex
				posts []time.Time // each POST's arrival
				sent  []time.Time // each 429 as it was answered
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				mu.Lock()
				defer mu.Unlock()
				posts = append(posts, time.Now())
				if len(sent) < tt.attempts {
					w.Header().Set("Retry-After", "1")
					sent = append(sent, time.Now())
					w.WriteHeader(http.StatusTooManyRequests)
					return
				}
				w.WriteHeader(http.StatusNoContent)
			}))
			t.Cleanup(srv.Close)
			log := zerolog.New(io.Discard)
			h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, URL: srv.URL + "/hook", Secrets: [][]byte{[]byte(testSecret)},
				Attempts: tt.attempts, RetryBase: webhook.MinRetry, RetryMax: 5 * time.Second, Log: log})
			if err != nil {
				t.Fatal(err)
			}
			r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Stream: pipeline.StreamResults, Consumer: "w1",
				Concurrency: 1, ClaimIdle: time.Minute, Block: 50 * time.Millisecond, NewGroupAt: "0"}, h, log, nil)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			defer func() { cancel(); <-done }()
			pipelinetest.Eventually(t, 20*time.Second, "a POST answered 204", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(posts) > tt.attempts
			})
			mu.Lock()
			defer mu.Unlock()
			// POST i+1 follows the 429 of POST i: both times are this
			// process's clock, the wait measured from before the answer left.
			for i, at := range sent {
				if gap := posts[i+1].Sub(at); gap < retryAfter {
					t.Errorf("POST %d came %v after the 429 (Retry-After: 1) of POST %d, want %v or more", i+2, gap.Round(time.Millisecond), i+1, retryAfter)
				}
			}
		})
	}
}
