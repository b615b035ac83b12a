package webhook_test

import (
	"context"
	"encoding/json"
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

// groupReceiver answers its first POST 429 with Retry-After: 3 and every
// other 204, and keeps each POST's arrival and events. until is the end of
// the pause it asked for, by its own clock, from before the answer left:
// load only makes the POSTs after it later, so a POST before it is the
// pause broken, never the machine slow.
type groupReceiver struct {
	mu    sync.Mutex
	posts []groupPost
	until time.Time
}

type groupPost struct {
	at   time.Time
	code int
	ids  []string
}

const groupPauseAsked = 3 * time.Second

func newGroupReceiver(t *testing.T) (*groupReceiver, string) {
	r := &groupReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body struct {
			Events []struct {
				ID string `json:"id"`
			} `json:"events"`
		}
		if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		p := groupPost{at: time.Now(), code: http.StatusNoContent}
		for _, ev := range body.Events {
			p.ids = append(p.ids, ev.ID)
		}
		if len(r.posts) == 0 {
			p.code = http.StatusTooManyRequests
			r.until = time.Now().Add(groupPauseAsked)
			w.Header().Set("Retry-After", "3")
		}
		r.posts = append(r.posts, p)
		w.WriteHeader(p.code)
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL + "/hook"
}

func (r *groupReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.posts)
}

// accepted counts the 2xx deliveries of each event id.
func (r *groupReceiver) accepted() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int{}
	for _, p := range r.posts {
		if p.code/100 == 2 {
			for _, id := range p.ids {
				m[id]++
			}
		}
	}
	return m
}

// check fails t for every POST after the first that came before the
// pause was over, and for every event of ids not accepted exactly once:
// nothing here fails but the 429, and no lease runs out (--claim-idle a
// minute), so at-least-once delivers each once.
func (r *groupReceiver) check(t *testing.T, ids ...[]string) {
	t.Helper()
	r.mu.Lock()
	for i, p := range r.posts[1:] {
		if early := r.until.Sub(p.at); early > 0 {
			t.Errorf("POST %d (%d events) came %v before the pause the receiver asked for was over", i+2, len(p.ids), early.Round(time.Millisecond))
		}
	}
	r.mu.Unlock()
	got := r.accepted()
	for _, entry := range ids {
		for _, id := range entry {
			if got[id] != 1 {
				t.Errorf("event %s accepted %d times, want once", id, got[id])
			}
		}
	}
}

// runGroupMember runs a webhook process of the default group on f's Redis
// (a Handler and its runner: each Handler's own pause is a process's) until
// the returned stop, or the test's end.
func runGroupMember(t *testing.T, f *fixture, consumer, url string, attempts int, claimIdle time.Duration, log zerolog.Logger) (stop func()) {
	h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, URL: url, Secrets: [][]byte{[]byte(testSecret)},
		Attempts: attempts, RetryBase: webhook.MinRetry, RetryMax: time.Second, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Stream: pipeline.StreamResults, Consumer: consumer,
		Concurrency: 1, ClaimIdle: claimIdle, Block: 50 * time.Millisecond, NewGroupAt: "0"}, h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	pipelinetest.Eventually(t, 10*time.Second, consumer+" ready", r.Ready)
	return stop
}

// A receiver's pause holds for every process of the group (issue #18:
// results flow at the rate the receiver chooses, with 3 replicas as with
// one). The receiver answers one process 429 Retry-After: 3; that
// process's handler waits it out holding its batch (one handler each), so
// the events emitted next go to the other process, which got no 429. It
// POSTed them at once, into the receiver that had asked everyone to wait:
// the pause was each process's own. Now no POST of either comes before
// the pause is over, and then every event is delivered, once.
func TestReceiversPauseHoldsEveryProcessOfTheGroup(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rcv, url := newGroupReceiver(t)
	runGroupMember(t, f, "a", url, 2, time.Minute, zerolog.Nop())
	runGroupMember(t, f, "b", url, 2, time.Minute, zerolog.Nop())
	first := f.emitEntries("c1", 1, 10, 1)
	pipelinetest.Eventually(t, 10*time.Second, "the 429", func() bool { return rcv.count() >= 1 })
	// The pause goes to Redis right after the 429 is read: the other
	// process POSTs on in that instant, and only that instant. Past a
	// second (old code: never), the test goes on, the pause not over.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if p, err := webhook.Pauses(t.Context(), f.rdb, f.keys, []string{webhook.DefaultGroup}); err != nil {
			t.Fatal(err)
		} else if p[webhook.DefaultGroup] > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	next := f.emitEntries("c2", 4, 10, 4)
	want := append(first, next...)
	pipelinetest.Eventually(t, 30*time.Second, "every event delivered", func() bool { return len(rcv.accepted()) == 50 })
	rcv.check(t, want...)
}

// A batch whose --attempts were all answered 429 is left pending, and
// another process claims it after --claim-idle (500ms here), during the
// pause: it POSTed at once, knowing of no pause. Now it waits the pause
// out too. The process answered stops after the 429, so that the claim is
// the other's.
func TestBatchClaimedDuringThePauseWaits(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rcv, url := newGroupReceiver(t)
	stopA := runGroupMember(t, f, "a", url, 1, 500*time.Millisecond, zerolog.Nop())
	ids := f.emitEntries("c1", 1, 10, 1)
	pipelinetest.Eventually(t, 10*time.Second, "the 429", func() bool { return rcv.count() >= 1 })
	stopA()
	runGroupMember(t, f, "b", url, 1, 500*time.Millisecond, zerolog.Nop())
	pipelinetest.Eventually(t, 30*time.Second, "the events delivered", func() bool { return len(rcv.accepted()) == 10 })
	rcv.check(t, ids...)
	if n := rcv.count(); n != 2 {
		t.Errorf("%d POSTs, want the 429 and one delivery", n)
	}
}

// Redis not answering the pause key (a proxy that stops forwarding: no
// refusal, no answer) holds no delivery back: each call gives up after
// its timeout, the process honours its own pause, as before there was a
// group's, and says once that it does. (The runner's Redis is another
// client, which answers: only the Handler's is cut off.)
func TestPauseKeyAwayFallsBackToTheProcesssOwn(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	proxy := pipelinetest.ProxyT(t, env.Redis.Addr, 0)
	cut, err := pipeline.NewRedis(proxy.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cut.Close)
	rcv, url := newGroupReceiver(t)
	var logs pipelinetest.Logs
	h, err := webhook.New(webhook.Config{Redis: cut, Keys: f.keys, URL: url, Secrets: [][]byte{[]byte(testSecret)},
		Attempts: 3, RetryBase: webhook.MinRetry, RetryMax: time.Second, Log: zerolog.New(&logs).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Stream: pipeline.StreamResults, Consumer: "w1",
		Concurrency: 1, ClaimIdle: time.Minute, Block: 50 * time.Millisecond, NewGroupAt: "0"}, h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
	proxy.Hold()
	ids := f.emitEntries("c1", 1, 10, 1)
	pipelinetest.Eventually(t, 60*time.Second, "the events delivered", func() bool { return len(rcv.accepted()) == 10 })
	rcv.check(t, ids...)
	if n := strings.Count(logs.String(), "cannot reach the receiver's shared pause"); n != 1 {
		t.Errorf("the pause key out of reach logged %d times, want once; log:\n%s", n, logs.String())
	}
}
