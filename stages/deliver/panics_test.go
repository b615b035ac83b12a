package deliver

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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
