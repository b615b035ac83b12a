package webhook_test

import (
	"context"
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

// A webhook cut off from Redis (a proxy that stops forwarding, both ways)
// while it retries a failing receiver goes on POSTing only while its
// batch's lease runs: past it another consumer may have claimed the
// entries and POST them too, and a cut-off process cannot learn that.
// (The old code POSTed on through its attempts for as long as the cut
// lasted.) Once Redis answers again and a keep finds the batch still its
// own, it POSTs again, and delivers once the receiver accepts.
func TestCutOffWebhookPostsNothingPastItsLease(t *testing.T) {
	f := newFixture(t)
	proxy := pipelinetest.ProxyT(t, env.Redis.Addr, 0)
	cut, err := pipeline.NewRedis(proxy.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cut.Close)
	var (
		mu        sync.Mutex
		posts     []time.Time
		accepting atomic.Bool
		delivered atomic.Int64
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		posts = append(posts, time.Now())
		mu.Unlock()
		if !accepting.Load() {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		delivered.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	postsAfter := func(at time.Time) (n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range posts {
			if p.After(at) {
				n++
			}
		}
		return n
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
	h, err := webhook.New(webhook.Config{Redis: cut, Keys: f.keys, URL: srv.URL + "/hook", Secrets: [][]byte{[]byte("secret-0123456789abcdef")},
		Attempts: 1000, RetryBase: 20 * time.Millisecond, RetryMax: 40 * time.Millisecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	const claimIdle = time.Second
	r := pipeline.NewRunner(cut, f.keys, pipeline.Options{Stage: "webhook", Stream: pipeline.StreamResults, Consumer: "w1",
		ClaimIdle: claimIdle, MaxDeliveries: 1000, Block: 100 * time.Millisecond}, h, log, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
	f.emitEvents("c1", 1, pipeline.OutcomeSent)
	pipelinetest.Eventually(t, 20*time.Second, "failed POSTs", func() bool { return postsAfter(time.Time{}) >= 5 })
	proxy.Hold()
	// The last keep that reached Redis was sent before now: the lease ran
	// out before now + ClaimIdle; a POST started before then is answered
	// at once.
	expired := time.Now().Add(claimIdle + 300*time.Millisecond)
	time.Sleep(time.Until(expired.Add(time.Second)))
	if n := postsAfter(expired); n > 0 {
		t.Errorf("%d POSTs after the lease ran out while Redis was cut off, want none", n)
	}
	accepting.Store(true)
	proxy.Release()
	pipelinetest.Eventually(t, 20*time.Second, "delivered once Redis is back", func() bool { return delivered.Load() > 0 })
	if n := delivered.Load(); n != 1 {
		t.Errorf("delivered %d times, want 1", n)
	}
}
