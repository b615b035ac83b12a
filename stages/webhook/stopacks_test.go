package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// A webhook process stopped with SIGTERM mid-run acks the entries whose
// events its receiver took: the process started after it POSTs again only
// the events of entries the stop cut short. Its first process POSTs under
// a low --rate, so its handlers wait in the cap at the stop, some past
// --shutdown-timeout: the wait ends at the stop. Before, the stop left
// every batch in hand pending whole, and the next process POSTed the
// entries delivered already again (12 events here): a burst of duplicates
// at every rolling restart.
func TestStopAcksWhatWasDelivered(t *testing.T) {
	t.Parallel()
	const entries, per = 32, 3 // 4 entries a partition, 3 events each: entries straddle POSTs of 4
	f := newFixture(t)
	ids := f.emitEntries("c1", entries, per, f.keys.Partitions)
	rcv := newTally(t, 0)
	secrets := f.writeSecrets(testSecret)
	args := f.stageArgs("webhook", "--url", rcv.srv.URL+"/hook", "--secret-file", secrets, "--batch", "4", "--claim-idle", "2s")

	// 4 events in 1.2 s (RateCapSlack): a POST every 1.2 s, a handler's
	// turn every 4.8 s.
	first := f.startStage("webhook", append(args, "--rate", "4", "--shutdown-timeout", "2s")...)
	pipelinetest.Eventually(t, 20*time.Second, "2 POSTs delivered", func() bool { return rcv.posts() >= 2 })
	first.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-first.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the webhook process did not exit within 10 s of SIGTERM")
	}
	before := rcv.next()
	if len(before) == 0 || len(before) >= entries*per {
		t.Fatalf("%d of %d events delivered before the stop: the test proves nothing", len(before), entries*per)
	}

	f.startStage("webhook", args...) // no --rate: done at once; killed by the cleanup
	pipelinetest.Eventually(t, 20*time.Second, "every event delivered", func() bool { return rcv.delivered() == entries*per })
	after := rcv.next()
	needless, cut := 0, 0
	for _, evs := range ids {
		whole := true
		for _, id := range evs {
			whole = whole && before[id] > 0
		}
		for _, id := range evs {
			if before[id] > 0 && after[id] > 0 {
				if whole {
					needless++
				} else {
					cut++
				}
			}
		}
	}
	t.Logf("%d events delivered before the stop; POSTed again: %d of entries cut short, %d of entries delivered whole", len(before), cut, needless)
	if needless > 0 {
		t.Errorf("%d events of entries delivered whole before the stop were POSTed again after it, want 0", needless)
	}
}

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
	stopWhen(t, f, h, log, 30*time.Second, "3 POSTs delivered", func() bool { return rcv.posts() >= 3 })
	got := rcv.next()
	if len(got) == 0 || len(got) >= entries*per {
		t.Fatalf("%d of %d events delivered before the stop: the test proves nothing", len(got), entries*per)
	}

	stream := f.keys.Stream(pipeline.StreamResults, 0)
	pending := f.pendingDeliveries(t, stream)
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
		if _, left := pending[entryIDs[i]]; left == whole {
			t.Errorf("entry %d: pending %v, all its events delivered %v", i, left, whole)
		}
	}
	if want := `pushpipe_webhook_events_total{group="webhook",result="pending"} `; !strings.Contains(gather(t, reg), want) {
		t.Errorf("metrics:\n%s\nwant %s", gather(t, reg), want)
	}
	if !strings.Contains(logs.String(), `"events":`+strconv.Itoa(undelivered)) || !strings.Contains(logs.String(), "left pending") {
		t.Errorf("want the stop logged with the %d events left pending; logs:\n%s", undelivered, logs.String())
	}
}

// A webhook whose POST is still in flight when the stop's
// --shutdown-timeout runs out (a receiver that hangs) acks the entries
// whose events the receiver took before it: only the entries of the POST
// cut off, and those after it, stay pending. Before, the cut handler
// returned its context's error, the runner's commit went out under the
// ended context too, and every entry of the batch stayed pending: the
// next process POSTed the delivered events again, at every deploy with a
// slow receiver. The entries left count no delivery for the stop.
func TestStopCutMidPostAcksWhatWasDelivered(t *testing.T) {
	t.Parallel()
	const entries, per = 6, 3
	f := newFixture(t)
	f.emitEntries("c1", entries, per, 1) // one partition: one batch
	var posts atomic.Int32
	hung := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if posts.Add(1) > 2 {
			select { // the third hangs until the stop cuts it off
			case <-r.Context().Done():
			case <-hung:
			}
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hung) })
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
	h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, URL: srv.URL + "/hook", Secrets: [][]byte{[]byte(testSecret)},
		Batch: per, Log: log}) // an entry a POST
	if err != nil {
		t.Fatal(err)
	}
	stopWhen(t, f, h, log, 300*time.Millisecond, "the third POST in flight", func() bool { return posts.Load() >= 3 })
	stream := f.keys.Stream(pipeline.StreamResults, 0)
	pending := f.pendingDeliveries(t, stream)
	for id, n := range pending {
		// Left for the stop, not failed: the runner gave back the
		// read's delivery (pipeline.ErrStopping).
		if n != 0 {
			t.Errorf("entry %s left pending at the stop counts %d deliveries, want 0", id, n)
		}
	}
	for i, id := range f.entryIDs(stream) {
		if _, left := pending[id]; left != (i >= 2) { // entries 0 and 1 went out whole, with 2xx
			t.Errorf("entry %d: pending %v, want %v", i, left, i >= 2)
		}
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

// stopWhen runs a webhook runner of h (consumer w1) until cond, then stops
// it as a SIGTERM does, giving in-flight batches shutdown to finish.
func stopWhen(t *testing.T, f *fixture, h *webhook.Handler, log zerolog.Logger, shutdown time.Duration, what string, cond func() bool) {
	t.Helper()
	r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Stream: pipeline.StreamResults, Consumer: "w1",
		Concurrency: 1, BatchSize: 100, Block: 50 * time.Millisecond, ShutdownTimeout: shutdown}, h, log, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	pipelinetest.Eventually(t, 10*time.Second, what, cond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// pendingDeliveries is the webhook group's pending entries of stream, each
// with the deliveries it counts (XPENDING's times-delivered).
func (f *fixture) pendingDeliveries(t *testing.T, stream string) map[string]int64 {
	t.Helper()
	res, err := f.rdb.Do(f.ctx, f.rdb.B().Xpending().Key(stream).Group("webhook").Start("-").End("+").Count(1000).Build()).ToArray()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range res {
		row, err := e.ToArray()
		if err != nil || len(row) < 4 {
			t.Fatalf("xpending %s: %v %v", stream, row, err)
		}
		id, _ := row[0].ToString()
		out[id], _ = row[3].AsInt64()
	}
	return out
}
