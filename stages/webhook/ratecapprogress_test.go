package webhook_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// A batch waiting in the --rate cap is not stuck: it moves at the pace the
// operator set (Batch.Progress), as a batch waiting out a receiver's pause
// does. At --rate 1 a batch of 5 events is 5 POSTs of one, 1.2 s apart (the
// cap's window), held ~5 s in all, past StuckAfter (2 s here): status read
// the webhook stuck, and an operator restarted it for nothing.
func TestBatchInTheRateCapIsNotStuck(t *testing.T) {
	t.Parallel()
	const stuckAfter = 2 * time.Second
	f := newFixture(t)
	rcv := newTally(t, 0)
	h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, URL: rcv.srv.URL + "/hook", Secrets: [][]byte{[]byte(testSecret)},
		Rate: 1, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	f.emitEntries("c1", 1, 5, 1)
	neverStuck(t, f, h, stuckAfter, func() bool { return rcv.delivered() >= 5 }, func() string {
		return fmt.Sprintf("with %d of 5 events delivered, its batch waiting in the rate cap", rcv.delivered())
	})
	if n := rcv.posts(); n != 5 {
		t.Errorf("%d POSTs, want 5 of one event (the cap)", n)
	}
}

// neverStuck runs h as the webhook stage (status stuck after stuckAfter)
// until done, failing t if status reads it stuck before (what says where
// it was) or done takes a minute. The caller emits the entries.
func neverStuck(t *testing.T, f *fixture, h pipeline.Handler, stuckAfter time.Duration, done func() bool, what func() string) {
	t.Helper()
	r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Stream: pipeline.StreamResults, Consumer: "w1",
		Concurrency: 1, Block: 50 * time.Millisecond, AliveEvery: 100 * time.Millisecond, StuckAfter: stuckAfter, NewGroupAt: "0"}, h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan error, 1)
	go func() { stopped <- r.Run(ctx) }()
	defer func() { cancel(); <-stopped }()
	pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
	deadline := time.Now().Add(60 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("not done in a minute: %s", what())
		}
		st, err := pipeline.Status(t.Context(), f.rdb, f.keys, pipeline.StreamResults)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range st[0].Groups {
			if g.State == pipeline.StateStuck {
				t.Fatalf("the webhook reads stuck %s", what())
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}
