package push

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// While cold, sends go one at a time; the first answer opens the gate and
// sends then run together.
func TestWarmupSendsAloneUntilAnAnswer(t *testing.T) {
	w := NewWarmup()
	var running, most atomic.Int64
	send := func(answered bool) func() bool {
		return func() bool {
			n := running.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(10 * time.Millisecond)
			running.Add(-1)
			return answered
		}
	}
	ctx := context.Background()
	// Two failed first sends (no answer) keep it cold: one at a time.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { w.Do(ctx, send(false)) })
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Fatalf("cold: %d sends at once, want 1", most.Load())
	}
	w.Do(ctx, send(true))
	most.Store(0)
	for range 20 {
		wg.Go(func() { w.Do(ctx, send(true)) })
	}
	wg.Wait()
	if most.Load() < 2 {
		t.Fatalf("warm: at most %d sends at once, want them together", most.Load())
	}
}

func TestWarmupWaiterGivesUpWithItsContext(t *testing.T) {
	w := NewWarmup()
	release := make(chan struct{})
	started := make(chan struct{}) // the first send holds the cold gate
	go w.Do(context.Background(), func() bool { close(started); <-release; return true })
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	sent := false
	if err := w.Do(ctx, func() bool { sent = true; return true }); err == nil || sent {
		t.Fatalf("a waiter behind a hung first send: err %v, sent %v; want the context's error, no send", err, sent)
	}
	close(release)
}
