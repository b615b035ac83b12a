package main

import (
	"bytes"
	"context"
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

// `pushpipe status` says that a webhook receiver fails, for how long and
// with what answer, while its process runs: its group read "running" or
// "idle", its events pending and then dead-lettered, and only the stage's
// log said why. The line goes once the receiver accepts again, whether the
// process that saw it fail or one started after it stopped sees that.
func TestStatusSaysAReceiverFails(t *testing.T) {
	_, rdb := testRedis(t)
	keys := pipeline.NewKeys("recvfail", 2)
	var code atomic.Int32
	code.Store(http.StatusInternalServerError)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(code.Load())) }))
	t.Cleanup(srv.Close)
	start := func(consumer string) (stop func()) {
		h, err := webhook.New(webhook.Config{Redis: rdb, Keys: keys, Group: "analytics", URL: srv.URL + "/hook", Secrets: [][]byte{[]byte("secret-0123456789abcdef")},
			Attempts: 1, Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		r := pipeline.NewRunner(rdb, keys, pipeline.Options{Stage: "webhook", Group: "analytics", Stream: pipeline.StreamResults, Consumer: consumer,
			ClaimIdle: 300 * time.Millisecond, MaxDeliveries: 1000, Block: 50 * time.Millisecond, AliveEvery: 200 * time.Millisecond}, h, zerolog.Nop(), nil)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
		return func() { cancel(); <-done }
	}
	emit := func(dev int64) {
		ev := pipeline.ResultEvent{ID: pipeline.ResultID("c1", "", dev, pipeline.OutcomeSent), Campaign: "c1", App: "a", UserID: 1,
			Platform: "ios", Token: "ab", Outcome: pipeline.OutcomeSent, AtMs: time.Now().UnixMilli()}
		if _, err := pipeline.Emit(t.Context(), rdb, pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, 0), Fields: pipeline.ResultFields(ev)}); err != nil {
			t.Fatal(err)
		}
	}
	stop := start("w1")
	defer func() { stop() }()
	emit(1)
	status := func() string {
		cli := parse(t, "status")
		rep, err := cli.Status.collect(t.Context(), rdb, keys, campaignSource{rdb: rdb, keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cli.Status.print(&out, rep, false)
		return out.String()
	}
	const says = "WEBHOOK group analytics receiver failing for "
	var out string
	pipelinetest.Eventually(t, 10*time.Second, "status says the receiver fails", func() bool {
		out = status()
		return strings.Contains(out, says)
	})
	for _, want := range []string{"failed deliver", "last: POST http://127.0.0.1:", "answered 500 Internal Server Error", "go to the DLQ after --max-deliveries"} {
		if !strings.Contains(out, want) {
			t.Errorf("status printed %s\nwant %q in it", out, want)
		}
	}
	code.Store(http.StatusOK)
	pipelinetest.Eventually(t, 10*time.Second, "the line gone once the receiver accepts", func() bool {
		out = status()
		return !strings.Contains(out, says)
	})

	// Stopped while its receiver fails, a process leaves the failure
	// recorded; the next one's first accepted POST ends it.
	code.Store(http.StatusInternalServerError)
	emit(2)
	pipelinetest.Eventually(t, 10*time.Second, "status says the receiver fails again", func() bool { return strings.Contains(status(), says) })
	stop()
	code.Store(http.StatusOK)
	stop = start("w2")
	pipelinetest.Eventually(t, 10*time.Second, "the line gone once the next process's POST is accepted", func() bool {
		out = status()
		return !strings.Contains(out, says)
	})
}

// A receiver retired with --force while its process ran: the group is gone
// from results, so status listed nothing of the process left running idle.
// It names the group while that process runs, and forgets it once stopped.
func TestStatusNamesARetiredGroupStillRunning(t *testing.T) {
	_, rdb := testRedis(t)
	keys := pipeline.NewKeys("retiredrun", 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	h, err := webhook.New(webhook.Config{Redis: rdb, Keys: keys, Group: "old", URL: srv.URL + "/hook", Secrets: [][]byte{[]byte("secret-0123456789abcdef")},
		Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	r := pipeline.NewRunner(rdb, keys, pipeline.Options{Stage: "webhook", Group: "old", Stream: pipeline.StreamResults, Consumer: "o1",
		ClaimIdle: 300 * time.Millisecond, MaxDeliveries: 10, Block: 50 * time.Millisecond, AliveEvery: 200 * time.Millisecond}, h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
	var said bytes.Buffer
	if err := parse(t, "results", "retire", "old", "--force").Results.Retire.retire(t.Context(), rdb, keys, &said); err != nil {
		t.Fatal(err)
	}
	if want := "a process of old still runs: it reads nothing more and answers /readyz with 503; stop it for good"; !strings.Contains(said.String(), want) {
		t.Errorf("retire --force printed %q, want it to say %q", said.String(), want)
	}
	pipelinetest.Eventually(t, 10*time.Second, "the runner knows", r.Retired)
	status := func() string {
		cli := parse(t, "status")
		rep, err := cli.Status.collect(t.Context(), rdb, keys, campaignSource{rdb: rdb, keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cli.Status.print(&out, rep, false)
		return out.String()
	}
	const says = "WEBHOOK group old retired (pushpipe results retire), but a process of it still runs"
	tests := []struct {
		name    string
		stop    bool
		present bool
	}{
		{"its process runs", false, true},
		{"its process stopped", true, false},
	}
	for _, tt := range tests {
		if tt.stop {
			cancel()
			<-done
			done <- nil // for the deferred stop
		}
		var out string
		pipelinetest.Eventually(t, 10*time.Second, tt.name, func() bool {
			out = status()
			return strings.Contains(out, says) == tt.present
		})
		if tt.present && !strings.Contains(out, "delete its Deployment") {
			t.Errorf("%s: status printed %s\nwant it to say what to do", tt.name, out)
		}
	}
}
