package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// `pushpipe status` says that a webhook receiver asked for a pause, and
// for how long still: its group read idle or running, its events waiting,
// and only the stage's log said why (and only for a pause past
// --retry-max). The receiver here answers 429 with Retry-After: 120.
func TestStatusSaysAReceiverPaused(t *testing.T) {
	t.Parallel()
	_, rdb := testRedis(t)
	keys := pipeline.NewKeys("recvpause", 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	t.Cleanup(srv.Close)
	h, err := webhook.New(webhook.Config{Redis: rdb, Keys: keys, Group: "analytics", URL: srv.URL + "/hook", Secrets: [][]byte{[]byte("secret-0123456789abcdef")},
		Attempts: 1, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	r := pipeline.NewRunner(rdb, keys, pipeline.Options{Stage: "webhook", Group: "analytics", Stream: pipeline.StreamResults, Consumer: "w1",
		ClaimIdle: time.Minute, Block: 50 * time.Millisecond, AliveEvery: 200 * time.Millisecond}, h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
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
	const says = "WEBHOOK group analytics receiver asked for a pause (a Retry-After, or a 429 or 503): no webhook process POSTs to it for another "
	if out := status(); strings.Contains(out, says) {
		t.Fatalf("status says the receiver paused before it was asked anything:\n%s", out)
	}
	ev := pipeline.ResultEvent{ID: pipeline.ResultID("c1", "", 1, pipeline.OutcomeSent), Campaign: "c1", App: "a", UserID: 1,
		Platform: "ios", Token: "ab", Outcome: pipeline.OutcomeSent, AtMs: time.Now().UnixMilli()}
	if _, err := pipeline.Emit(t.Context(), rdb, pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, 0), Fields: pipeline.ResultFields(ev)}); err != nil {
		t.Fatal(err)
	}
	var out string
	pipelinetest.Eventually(t, 10*time.Second, "status says the receiver paused", func() bool {
		out = status()
		return strings.Contains(out, says)
	})
	// 120 s asked, rounded up to the second: 2m until a second has gone,
	// 1m (Ago's minutes) after.
	if !strings.Contains(out, says+"2m.") && !strings.Contains(out, says+"1m.") {
		t.Errorf("status printed %s\nwant the pause's 2m (or 1m) left", out)
	}
}
