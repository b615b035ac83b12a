package webhook_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// pauseReceiver answers its first POST with code and the headers pause
// sets, which return when the receiver may be POSTed to again at the
// earliest (by this host's clock, which the receiver shares); it answers
// 204 to the rest. Gaps are measured on the receiver's side, from before
// the answer left: load only lengthens them.
type pauseReceiver struct {
	mu    sync.Mutex
	posts []time.Time // arrivals
	until time.Time   // no POST before, once the first was answered
}

func newPauseReceiver(t *testing.T, code int, pause func(h http.Header, sent time.Time) (until time.Time)) (*pauseReceiver, string) {
	r := &pauseReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.posts = append(r.posts, time.Now())
		if len(r.posts) > 1 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		r.until = pause(w.Header(), time.Now())
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL + "/hook"
}

func (r *pauseReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.posts)
}

// check fails t for the POST after the first that came before until.
func (r *pauseReceiver) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if early := r.until.Sub(r.posts[1]); early > 0 {
		t.Errorf("second POST came %v before the pause the receiver asked for was over", early.Round(time.Millisecond))
	}
}

// A receiver's Retry-After is honoured past --retry-max (issue #18: the
// receiver chooses the pace): no POST before it is over, in any of its
// forms, on any answer. It was cut to --retry-max (1 s here), an HTTP date
// was read against this host's clock (a receiver whose clock is an hour
// behind asked for nothing), and the first POST after the cut went into
// the receiver that had asked for more. Meanwhile the batch stays this
// process's: its lease (--claim-idle 500ms here, six times shorter than
// the pause) is kept, and a second consumer, which would claim it, POSTs
// nothing. Every pause past --retry-max is logged once.
func TestLongRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	const pause = 3 * time.Second
	tests := []struct {
		name  string
		code  int
		pause func(h http.Header, sent time.Time) time.Time
	}{
		{"seconds, 429", http.StatusTooManyRequests, func(h http.Header, sent time.Time) time.Time {
			h.Set("Retry-After", "3")
			return sent.Add(pause)
		}},
		{"seconds, on a 500", http.StatusInternalServerError, func(h http.Header, sent time.Time) time.Time {
			h.Set("Retry-After", "3")
			return sent.Add(pause)
		}},
		{"HTTP date, 503", http.StatusServiceUnavailable, func(h http.Header, sent time.Time) time.Time {
			date := sent.Truncate(time.Second) // as the Date header has it
			h.Set("Date", date.Format(http.TimeFormat))
			h.Set("Retry-After", date.Add(pause).Format(http.TimeFormat))
			return sent.Add(pause)
		}},
		{"HTTP date, the receiver's clock an hour behind", http.StatusServiceUnavailable, func(h http.Header, sent time.Time) time.Time {
			date := sent.Add(-time.Hour).Truncate(time.Second)
			h.Set("Date", date.Format(http.TimeFormat))
			h.Set("Retry-After", date.Add(pause).Format(http.TimeFormat))
			return sent.Add(pause)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.emitEntries("c1", 1, 10, 1) // one batch
			rcv, url := newPauseReceiver(t, tt.code, tt.pause)
			var logs pipelinetest.Logs
			log := zerolog.New(&logs).Level(zerolog.InfoLevel)
			run := func(consumer string) {
				h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, URL: url, Secrets: [][]byte{[]byte(testSecret)},
					Attempts: 2, RetryBase: webhook.MinRetry, RetryMax: time.Second, Log: log})
				if err != nil {
					t.Fatal(err)
				}
				r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Stream: pipeline.StreamResults, Consumer: consumer,
					Concurrency: 1, ClaimIdle: 500 * time.Millisecond, Block: 50 * time.Millisecond, NewGroupAt: "0"}, h, zerolog.Nop(), nil)
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() { done <- r.Run(ctx) }()
				t.Cleanup(func() { cancel(); <-done })
			}
			run("w1")
			run("w2") // claims the batch if w1's lease lapses
			pipelinetest.Eventually(t, 30*time.Second, "a POST answered 204", func() bool { return rcv.count() >= 2 })
			rcv.check(t)
			if !strings.Contains(logs.String(), "receiver asked for a pause") {
				t.Errorf("the pause was not logged; log:\n%s", logs.String())
			}
		})
	}
}

// A 429 or 503 that says no Retry-After (or one that cannot be read) holds
// back every POST of the process for the backoff too, after the last
// attempt as well: too many requests is about all of them. Only the
// handler answered waited, and after its last attempt not even it: the
// next batch was POSTed at once (--attempts 1 here, one handler, two
// batches). The backoff is 1 s at least: --retry-base 2s.
func TestTooManyWithoutRetryAfterHoldsBackTheProcess(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		code       int
		retryAfter string
	}{
		{"429, none", http.StatusTooManyRequests, ""},
		{"503, none", http.StatusServiceUnavailable, ""},
		{"429, garbage", http.StatusTooManyRequests, "soon"},
		{"503, negative", http.StatusServiceUnavailable, "-5"},
		{"429, a date past", http.StatusTooManyRequests, "Mon, 01 Jan 2001 00:00:00 GMT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.emitEntries("c1", 2, 10, 2) // two batches
			rcv, url := newPauseReceiver(t, tt.code, func(h http.Header, sent time.Time) time.Time {
				if tt.retryAfter != "" {
					h.Set("Retry-After", tt.retryAfter)
				}
				return sent.Add(time.Second) // backoff(1) is in [1s, 2s]
			})
			h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, URL: url, Secrets: [][]byte{[]byte(testSecret)},
				Attempts: 1, RetryBase: 2 * time.Second, RetryMax: 2 * time.Second, Log: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Stream: pipeline.StreamResults, Consumer: "w1",
				Concurrency: 1, ClaimIdle: time.Minute, Block: 50 * time.Millisecond, NewGroupAt: "0"}, h, zerolog.Nop(), nil)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			defer func() { cancel(); <-done }()
			pipelinetest.Eventually(t, 20*time.Second, "a POST answered 204", func() bool { return rcv.count() >= 2 })
			rcv.check(t)
		})
	}
}

// A stop during a long pause (Retry-After: 120, past the old cap of
// --retry-max) ends the wait at once: nothing more is POSTed, and the
// batch is left pending with the delivery that brought it given back
// (pipeline.ErrStopping), a stop being no failure of its.
func TestStopDuringLongPause(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.emitEntries("c1", 2, 10, 1) // one batch of two entries
	rcv, url := newPauseReceiver(t, http.StatusServiceUnavailable, func(h http.Header, sent time.Time) time.Time {
		h.Set("Retry-After", "120")
		return sent.Add(120 * time.Second)
	})
	h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, URL: url, Secrets: [][]byte{[]byte(testSecret)},
		Attempts: 3, RetryBase: webhook.MinRetry, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	var over time.Time // when the pause asked for ends
	stopWhen(t, f, h, zerolog.Nop(), 30*time.Second, "the first POST answered", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		over = rcv.until
		return !over.IsZero()
	})
	if now := time.Now(); !now.Before(over) { // stopWhen waited for the runner to return
		t.Fatalf("the stop returned %v after the pause was over, not at once", now.Sub(over))
	}
	if n := rcv.count(); n != 1 {
		t.Errorf("%d POSTs, want only the one answered 503", n)
	}
	stream := f.keys.Stream(pipeline.StreamResults, 0)
	pending := f.pendingDeliveries(t, stream)
	if len(pending) != 2 {
		t.Errorf("%d entries pending after the stop, want both", len(pending))
	}
	for id, n := range pending {
		if n != 0 {
			t.Errorf("entry %s left pending at the stop counts %d deliveries, want 0", id, n)
		}
	}
}

// A pause asked for while a handler waits in the --rate cap (another
// handler's 429) holds back that handler's POST too: it asks again once it
// has its events. It asked only before the wait, so under a low --rate,
// where handlers wait there most of the time, the POSTs taken meanwhile went
// out into the receiver that had asked for a pause. The cap is full when
// the batch is read (the test took its one event a second), so the
// handler waits in it ~1.2 s; the pause starts meanwhile; no POST may
// follow. (On a box too slow to reach the cap's wait before the pause,
// the old code would pass too; this code cannot fail.)
func TestPauseAskedDuringTheRateCapsWaitHolds(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rcv, url := newPauseReceiver(t, http.StatusNoContent, func(http.Header, time.Time) time.Time { return time.Time{} })
	h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, URL: url, Secrets: [][]byte{[]byte(testSecret)},
		Rate: 1, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.NewRateCap(f.rdb, f.keys.RateCap("webhook"), 1).Take(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	full := time.Now()
	stream := f.keys.Stream(pipeline.StreamResults, 0)
	r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Stream: pipeline.StreamResults, Consumer: "w1",
		Concurrency: 1, ClaimIdle: time.Minute, Block: 50 * time.Millisecond, NewGroupAt: "0"}, h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready) // its group made
	f.emitEntries("c1", 1, 1, 1)
	pipelinetest.Eventually(t, 10*time.Second, "the batch read", func() bool { return len(f.pendingDeliveries(t, stream)) == 1 })
	h.QuietFor(time.Hour)
	// The cap has room again 1.2 s after the test's take: the handler's
	// take returns then, and the old code POSTed at once.
	time.Sleep(time.Until(full.Add(2500 * time.Millisecond)))
	if n := rcv.count(); n != 0 {
		t.Errorf("%d POSTs during the pause asked for while the handler waited in the rate cap", n)
	}
}

// A webhook waiting out a receiver's pause is not stuck: its batch moves
// (Batch.Progress), as a batch waiting at a provider's pace does. It read
// stuck past StuckAfter (2 s here, a minute or two by default: shorter
// than a pause now may be), and a process restarted for it knows of no
// pause and POSTs at once.
func TestPausedWebhookIsNotStuck(t *testing.T) {
	t.Parallel()
	const stuckAfter = 2 * time.Second
	f := newFixture(t)
	f.emitEntries("c1", 1, 10, 1)
	rcv, url := newPauseReceiver(t, http.StatusTooManyRequests, func(h http.Header, sent time.Time) time.Time {
		h.Set("Retry-After", "6")
		return sent.Add(6 * time.Second)
	})
	h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, URL: url, Secrets: [][]byte{[]byte(testSecret)},
		Attempts: 2, RetryBase: webhook.MinRetry, RetryMax: 10 * time.Second, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Stream: pipeline.StreamResults, Consumer: "w1",
		Concurrency: 1, Block: 50 * time.Millisecond, AliveEvery: 100 * time.Millisecond, StuckAfter: stuckAfter, NewGroupAt: "0"}, h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var over time.Time // when the pause ends
	pipelinetest.Eventually(t, 10*time.Second, "the first POST answered", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		over = rcv.until
		return !over.IsZero()
	})
	// From StuckAfter into the pause to a second before its end.
	time.Sleep(time.Until(over.Add(-6*time.Second + stuckAfter + 500*time.Millisecond)))
	for time.Until(over) > time.Second {
		st, err := pipeline.Status(t.Context(), f.rdb, f.keys, pipeline.StreamResults)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range st[0].Groups {
			if g.State == pipeline.StateStuck {
				t.Fatalf("%v into the receiver's pause the webhook reads stuck", (6*time.Second - time.Until(over)).Round(time.Millisecond))
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// An absurd Retry-After (a day) is honoured for --retry-after-max (2 s
// here), then the receiver is asked again; the log warns that the pause
// was cut, saying what was asked.
func TestDayLongRetryAfterIsCut(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.emitEntries("c1", 1, 10, 1)
	rcv, url := newPauseReceiver(t, http.StatusServiceUnavailable, func(h http.Header, sent time.Time) time.Time {
		h.Set("Retry-After", "86400")
		return sent.Add(2 * time.Second)
	})
	var logs pipelinetest.Logs
	h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, URL: url, Secrets: [][]byte{[]byte(testSecret)},
		Attempts: 2, RetryBase: webhook.MinRetry, RetryMax: time.Second, RetryAfterMax: 2 * time.Second, Log: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Stream: pipeline.StreamResults, Consumer: "w1",
		Concurrency: 1, Block: 50 * time.Millisecond, NewGroupAt: "0"}, h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	pipelinetest.Eventually(t, 30*time.Second, "the receiver asked again after --retry-after-max", func() bool { return rcv.count() >= 2 })
	rcv.check(t)
	if l := logs.String(); !strings.Contains(l, `"level":"warn"`) || !strings.Contains(l, `"asked":"24h0m0s","for":"2s","message":"webhook receiver asked for a pause longer than --retry-after-max`) {
		t.Errorf("the cut pause was not warned about; log:\n%s", l)
	}
}
