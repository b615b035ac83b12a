package deliver

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// panickySender panics for one token (a sender's bug on some input) and
// sends every other.
type panickySender struct {
	token string

	mu    sync.Mutex
	sends map[string]int
}

func (s *panickySender) Send(ctx context.Context, n push.Notification) push.Result {
	if n.Token == s.token {
		var tokens []string
		_ = tokens[len(n.Token)] // the bug: an index out of range
	}
	s.mu.Lock()
	s.sends[n.Token]++
	s.mu.Unlock()
	return push.Result{Outcome: push.Sent, Status: 200}
}

func (s *panickySender) sent(token string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sends[token]
}

// A panic in a send, on one of deliver's own goroutines, does not end the
// process: it fails its batch, whose entries are handled one by one; the
// entry holding the device ends in the DLQ with the panic as its reason,
// the devices of the other entries are sent once, and the stage goes on
// serving (with every in-flight slot back: InFlight is small here).
func TestPanickingSendGoesToDLQ(t *testing.T) {
	f := newFixture(t)
	devices := f.seedDevices(40, false)
	const bad = 13
	s := &panickySender{token: iosToken(bad, 0), sends: map[string]int{}}
	f.createCampaign("c1", `{}`)
	f.createCampaign("c2", `{}`)
	poisoned := []int64{bad, bad + 1, bad + 2}
	f.emitUsers("c1", userRange(bad-1))
	f.emitUsers("c1", poisoned) // an entry of its own
	f.emitUsers("c1", userRange(40)[bad+2:])
	f.startStageWith(Config{Senders: map[push.Platform]push.Sender{push.IOS: s}, InFlight: 8}, pipeline.Options{
		Stage: "deliver", Stream: pipeline.StreamDeliver, Consumer: "d1",
		Concurrency: 4, BatchSize: 4, Block: 50 * time.Millisecond, ClaimIdle: 300 * time.Millisecond,
		MaxDeliveries: 2, ShutdownTimeout: 5 * time.Second,
	})
	pipelinetest.Eventually(t, 20*time.Second, "a dead letter", func() bool { return len(f.dlq()) > 0 })
	dead := f.dlq()
	fields, err := pipeline.DecodeDLQFields(dead[0][pipeline.DLQFields])
	if err != nil {
		t.Fatal(err)
	}
	users, err := pipeline.DecodeIDs(fields[pipeline.FieldUsers])
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || fields[pipeline.FieldCampaign] != "c1" || !slices.Equal(users, poisoned) ||
		!strings.Contains(dead[0][pipeline.DLQError], "panic") {
		t.Fatalf("dead letters %v, want one: c1's entry of users %v, with the panic as its reason", dead, poisoned)
	}
	others := func(yield func(testDevice) bool) { // the devices of the other entries
		for _, d := range devices {
			if !slices.Contains(poisoned, d.user) && !yield(d) {
				return
			}
		}
	}
	// The other entries may still be on their way when the first dead
	// letter is written.
	pipelinetest.Eventually(t, 20*time.Second, "every other device sent", func() bool {
		for d := range others {
			if s.sent(d.token) == 0 {
				return false
			}
		}
		return true
	})
	for d := range others {
		if s.sent(d.token) != 1 {
			t.Errorf("user %d's device sent %d times, want once", d.user, s.sent(d.token))
		}
	}
	// Still serving.
	f.emitUsers("c2", []int64{1, 2, 3})
	f.waitDone("c2", 3, 10*time.Second)
}

// A panic while writing marks fails the rounds whose marks it held with the
// panic, gives their slots back and leaves the marker serving. A campaign of
// nil stands for the bug: its id is read while one campaign's marks are
// written, or while several campaigns' are grouped. (A panic inside one
// group's write, on a goroutine of its own, is raised again on the marker's
// goroutine: no input found reaches it.)
func TestPanickingMarkFailsItsRounds(t *testing.T) {
	tests := []struct {
		name  string
		marks func(r *round, ok *campaign) []markReq
	}{
		{"one campaign", func(r *round, _ *campaign) []markReq {
			return []markReq{{p: 0, c: nil, d: device{id: 1}, outcome: push.Sent, r: r}}
		}},
		{"two campaigns", func(r *round, ok *campaign) []markReq {
			return []markReq{
				{p: 0, c: ok, d: device{user: 1, id: 1}, outcome: push.Sent, r: r},
				{p: 1, c: nil, d: device{id: 2}, outcome: push.Sent, r: r},
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.Disabled)
			h, err := New(Config{Redis: f.rdb, DB: f.db, Keys: f.keys, Log: log, InFlight: 4,
				Senders: map[push.Platform]push.Sender{push.IOS: &panickySender{sends: map[string]int{}}}})
			if err != nil {
				t.Fatal(err)
			}
			r := h.newRound(t.Context(), &pipeline.Batch{}, 0)
			defer r.end()
			marks := tt.marks(r, &campaign{ID: "c1", App: "app", ttl: time.Hour})
			if n, err := r.slots.take(t.Context(), len(marks)); err != nil || n != len(marks) {
				t.Fatalf("took %d slots (%v), want %d", n, err, len(marks))
			}
			r.started(len(marks))
			h.marker.markAll(marks) // the process would end here on a marker without recover

			done := make(chan struct{})
			go func() { r.sends.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the round's sends were never settled")
			}
			if err := r.err(); err == nil || !strings.Contains(err.Error(), "panicked") {
				t.Errorf("round error %v, want the panic", err)
			}
			if n, _ := r.slots.take(t.Context(), 4); n != 4 {
				t.Errorf("%d of 4 slots free after the panic, want every one back", n)
			}
			r.slots.give(4)

			// Still serving: a good mark is written and settles its round.
			ok := h.newRound(t.Context(), &pipeline.Batch{}, 0)
			defer ok.end()
			ok.slots.take(t.Context(), 1)
			ok.started(1)
			h.marker.markAll([]markReq{{p: 0, c: &campaign{ID: "c2", App: "app", ttl: time.Hour}, d: device{user: 5, id: 5}, outcome: push.Sent, r: ok}})
			ok.sends.Wait()
			if err := ok.err(); err != nil {
				t.Errorf("a good mark after the panic: %v", err)
			}
		})
	}
}
