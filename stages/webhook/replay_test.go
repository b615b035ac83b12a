package webhook_test

import (
	"context"
	"encoding/json"
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

// idReceiver counts the event ids POSTed to it.
type idReceiver struct {
	mu  sync.Mutex
	ids map[string]int
	srv *httptest.Server
}

func newIDReceiver(t *testing.T) *idReceiver {
	r := &idReceiver{ids: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var post struct{ Events []pipeline.ResultEvent }
		if err := json.Unmarshal(b, &post); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, ev := range post.Events {
			r.ids[ev.ID]++
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// total is how many events arrived, repeats included.
func (r *idReceiver) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.ids {
		n += c
	}
	return n
}

// A receiver that lost events (its database restored from a backup) gets
// them again from `pushpipe replay --stream results --group G`, and only
// it: the other receivers' groups skip the re-injected entries. A group
// that reads no results is refused (every group would skip the entries),
// and --campaign finds a direct message's results by its id.
func TestReplayResultsToOneReceiver(t *testing.T) {
	f := newFixture(t)
	log := zerolog.New(io.Discard)
	recv := map[string]*idReceiver{}
	for _, group := range []string{"a", "b"} {
		recv[group] = newIDReceiver(t)
		h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, Group: group, URL: recv[group].srv.URL + "/hook",
			Secrets: [][]byte{[]byte("secret-0123456789abcdef")}, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Group: group, Stream: pipeline.StreamResults, Consumer: group + "1",
			ClaimIdle: time.Minute, MaxDeliveries: 10, Block: 50 * time.Millisecond, NewGroupAt: "0"}, h, log, nil)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
	}
	f.emitEvents("c1", 20, pipeline.OutcomeSent, pipeline.OutcomeInvalid)
	msg := pipeline.ResultEvent{ID: pipeline.ResultID("", "m1", 1, pipeline.OutcomeSent), Message: "m1", App: "app1", UserID: 3, Platform: "ios",
		Token: "tok", Outcome: pipeline.OutcomeSent, AtMs: time.Now().UnixMilli()}
	if _, err := pipeline.Emit(f.ctx, f.rdb, pipeline.Message{Stream: f.keys.Stream(pipeline.StreamResults, 0), Fields: pipeline.ResultFields(msg)}); err != nil {
		t.Fatal(err)
	}
	for g, r := range recv {
		pipelinetest.Eventually(t, 10*time.Second, "receiver "+g+" got every event", func() bool { return r.total() == 21 })
	}
	// A replay leaves to b what b has not acked yet (its POST answered,
	// the ack not yet written): b must have finished them all first.
	groupFinished(t, f, "b")

	if _, err := pipeline.Replay(f.ctx, f.rdb, f.keys, pipeline.ReplayOptions{Stream: pipeline.StreamResults, Group: "gone"}); err == nil ||
		!strings.Contains(err.Error(), "no group gone reads results (its groups: a, b)") {
		t.Errorf("replay to a group that reads no results: %v, want it refused naming the groups", err)
	}
	res, err := pipeline.Replay(f.ctx, f.rdb, f.keys, pipeline.ReplayOptions{Stream: pipeline.StreamResults, Group: "b"})
	if err != nil || res.Injected != 21 {
		t.Fatalf("replay to b: %+v, %v", res, err)
	}
	pipelinetest.Eventually(t, 10*time.Second, "receiver b got every event again", func() bool { return recv["b"].total() == 42 })
	groupFinished(t, f, "b")
	res, err = pipeline.Replay(f.ctx, f.rdb, f.keys, pipeline.ReplayOptions{Stream: pipeline.StreamResults, Group: "b", Campaign: "m1"})
	if err != nil || res.Injected != 2 { // the message's entry, and its replay above
		t.Fatalf("replay of message m1 to b: %+v, %v, want its 2 entries", res, err)
	}
	pipelinetest.Eventually(t, 10*time.Second, "receiver b got the message's event twice more", func() bool {
		recv["b"].mu.Lock()
		defer recv["b"].mu.Unlock()
		return recv["b"].ids[msg.ID] == 4
	})
	groupFinished(t, f, "a")
	if n := recv["a"].total(); n != 21 {
		t.Errorf("receiver a got %d events, want its 21 only: a replay to b reached it", n)
	}
}

// groupFinished waits until group has read and acked every results entry.
func groupFinished(t *testing.T, f *fixture, group string) {
	t.Helper()
	pipelinetest.Eventually(t, 10*time.Second, "group "+group+" read and acked every entry", func() bool {
		groups, err := pipeline.StreamGroups(f.ctx, f.rdb, f.keys.Streams(pipeline.StreamResults))
		if err != nil {
			t.Fatal(err)
		}
		for _, gs := range groups {
			for _, g := range gs {
				if g.Name == group && (g.Lag != 0 || g.Pending != 0) {
					return false
				}
			}
		}
		return true
	})
}
