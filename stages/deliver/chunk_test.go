package deliver

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// Sends go one per worker until the provider is seen to answer within
// microseconds, and go back to one per worker when it slows down.
func TestChunkSizeFollowsSendTimes(t *testing.T) {
	m := newMetrics(nil)
	l := newLane(pipeline.Bulk, push.IOS, &NullSender{}, m)
	if n := l.chunkSize(); n != 1 {
		t.Fatalf("before any send: chunk %d, want 1", n)
	}
	for range 200 {
		l.observe(300 * time.Nanosecond)
	}
	if n := l.chunkSize(); n != maxChunk {
		t.Fatalf("after quick sends: chunk %d, want %d", n, maxChunk)
	}
	for range 20 {
		l.observe(20 * time.Millisecond)
	}
	if n := l.chunkSize(); n != 1 {
		t.Fatalf("after slow sends: chunk %d, want 1", n)
	}
	if n := newLane(pipeline.Bulk, push.Android, nil, m).chunkSize(); n != maxChunk {
		t.Fatalf("no sender: chunk %d, want %d (marked failed at once)", n, maxChunk)
	}
}

// countingSender answers at once, except every 50th send, which takes
// 3 ms: chunks form, and a chunk that meets a slow send hands out its rest.
type countingSender struct {
	mu    sync.Mutex
	n     int
	sends map[string]int
}

func (s *countingSender) Send(ctx context.Context, n push.Notification) push.Result {
	s.mu.Lock()
	s.n++
	slow := s.n%50 == 0
	s.sends[n.Token]++
	s.mu.Unlock()
	if slow {
		time.Sleep(3 * time.Millisecond)
	}
	return push.Result{Outcome: push.Sent, Status: 200}
}

// Chunked sends reach every device exactly once and count each once.
func TestChunkedSendsReachEveryoneOnce(t *testing.T) {
	f := newFixture(t)
	const users = 6000
	devs := make([]testDevice, 0, users+users/3)
	for u := int64(1); u <= users; u++ {
		devs = append(devs, testDevice{u, push.IOS, iosToken(u, 0)})
		if u%3 == 0 {
			devs = append(devs, testDevice{u, push.IOS, iosToken(u, 1)})
		}
	}
	f.insertDevices(devs)
	f.createCampaign("chunks", `{}`)
	sender := &countingSender{sends: map[string]int{}}
	f.emitUsers("chunks", userRange(users))
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: sender}, InFlight: 512}, "chunks", 30*time.Second)
	stats := f.waitDone("chunks", users, time.Minute)
	if stats[pipeline.StatSent] != int64(len(devs)) {
		t.Fatalf("sent %d, want %d", stats[pipeline.StatSent], len(devs))
	}
	sender.mu.Lock()
	defer sender.mu.Unlock()
	if len(sender.sends) != len(devs) {
		t.Fatalf("%d distinct tokens sent, want %d", len(sender.sends), len(devs))
	}
	for tok, n := range sender.sends {
		if n != 1 {
			t.Fatalf("token %s sent %d times", tok, n)
		}
	}
}
