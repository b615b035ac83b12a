package webhook_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

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
	f.emitEntries("c1", 1, 1, 1)
	neverStuck(t, f, h, stuckAfter, func() bool { return accepted.Load() >= 1 }, func() string {
		return fmt.Sprintf("at POST %d, its batch backing off or waiting for a slow receiver", posts.Load())
	})
}
