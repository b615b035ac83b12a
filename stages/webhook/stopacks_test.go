package webhook_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// A webhook told to stop while it POSTs a batch to a slow receiver
// finishes the POST in flight, then leaves pending exactly the entries
// with an event the receiver did not take (an entry straddling two POSTs
// among them) and acks the others; it counts the events left pending and
// logs how many. Before, every entry of the batch stayed pending.
func TestStopLeavesPendingOnlyWhatWasNotDelivered(t *testing.T) {
	t.Parallel()
	const entries, per = 10, 3
	f := newFixture(t)
	ids := f.emitEntries("c1", entries, per, 1) // one partition: one batch
	rcv := newTally(t, 50*time.Millisecond)
	var logs pipelinetest.Logs
	log := zerolog.New(&logs).Level(zerolog.InfoLevel)
	reg := prometheus.NewRegistry()
	h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, URL: rcv.srv.URL + "/hook", Secrets: [][]byte{[]byte(testSecret)},
		Batch: 2, Metrics: reg, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Stream: pipeline.StreamResults, Consumer: "w1",
		Concurrency: 1, BatchSize: 100, Block: 50 * time.Millisecond, ShutdownTimeout: 30 * time.Second}, h, log, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	pipelinetest.Eventually(t, 10*time.Second, "3 POSTs delivered", func() bool { return rcv.posts() >= 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := rcv.next()
	if len(got) == 0 || len(got) >= entries*per {
		t.Fatalf("%d of %d events delivered before the stop: the test proves nothing", len(got), entries*per)
	}

	stream := f.keys.Stream(pipeline.StreamResults, 0)
	res, err := f.rdb.Do(f.ctx, f.rdb.B().Xpending().Key(stream).Group("webhook").Start("-").End("+").Count(1000).Build()).ToArray()
	if err != nil {
		t.Fatal(err)
	}
	pending := map[string]bool{}
	for _, e := range res {
		row, _ := e.ToArray()
		id, _ := row[0].ToString()
		pending[id] = true
	}
	entryIDs := f.entryIDs(stream)
	undelivered := 0
	for i, evs := range ids {
		whole := true
		for _, id := range evs {
			if got[id] == 0 {
				whole = false
				undelivered++
			}
		}
		if pending[entryIDs[i]] == whole {
			t.Errorf("entry %d: pending %v, all its events delivered %v", i, pending[entryIDs[i]], whole)
		}
	}
	if want := `pushpipe_webhook_events_total{group="webhook",result="pending"} `; !strings.Contains(gather(t, reg), want) {
		t.Errorf("metrics:\n%s\nwant %s", gather(t, reg), want)
	}
	if !strings.Contains(logs.String(), `"events":`+strconv.Itoa(undelivered)) || !strings.Contains(logs.String(), "left pending") {
		t.Errorf("want the stop logged with the %d events left pending; logs:\n%s", undelivered, logs.String())
	}
}

// emitEntries writes entries results entries of per events each, entry e
// to partition e mod parts, and returns each entry's event ids.
func (f *fixture) emitEntries(campaign string, entries, per, parts int) [][]string {
	f.t.Helper()
	ids := make([][]string, entries)
	msgs := make([]pipeline.Message, entries)
	for e := range entries {
		evs := make([]pipeline.ResultEvent, per)
		for k := range evs {
			dev := int64(e*per + k)
			evs[k] = pipeline.ResultEvent{ID: pipeline.ResultID(campaign, "", dev, pipeline.OutcomeSent), Campaign: campaign, App: "app1",
				UserID: dev + 1, Platform: "ios", Token: "tok" + strconv.Itoa(int(dev)), Outcome: pipeline.OutcomeSent, AtMs: time.Now().UnixMilli()}
			ids[e] = append(ids[e], evs[k].ID)
		}
		msgs[e] = pipeline.Message{Stream: f.keys.Stream(pipeline.StreamResults, e%parts), Fields: pipeline.ResultFields(evs...)}
	}
	if _, err := pipeline.Emit(f.ctx, f.rdb, msgs...); err != nil {
		f.t.Fatal(err)
	}
	return ids
}

// entryIDs are the ids of stream's entries, in stream order.
func (f *fixture) entryIDs(stream string) []string {
	f.t.Helper()
	res, err := f.rdb.Do(f.ctx, f.rdb.B().Xrange().Key(stream).Start("-").End("+").Build()).AsXRange()
	if err != nil {
		f.t.Fatal(err)
	}
	ids := make([]string, len(res))
	for i, e := range res {
		ids[i] = e.ID
	}
	return ids
}

// tally is a receiver that answers 204 to every POST (after delay) and
// counts each event id it took, by phase (next).
type tally struct {
	srv *httptest.Server
	mu  sync.Mutex
	n   int             // POSTs answered
	got map[string]int  // this phase's
	all map[string]bool // every phase's
}

func newTally(t *testing.T, delay time.Duration) *tally {
	r := &tally{got: map[string]int{}, all: map[string]bool{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body struct {
			Events []struct {
				ID string `json:"id"`
			} `json:"events"`
		}
		if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		time.Sleep(delay)
		r.mu.Lock()
		for _, ev := range body.Events {
			r.got[ev.ID]++
			r.all[ev.ID] = true
		}
		r.n++
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *tally) posts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// next ends a phase: it returns the phase's events and starts another.
func (r *tally) next() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = map[string]int{}
	return got
}

// delivered is how many events it took, each once.
func (r *tally) delivered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.all)
}
