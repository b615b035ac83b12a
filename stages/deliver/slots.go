package deliver

import (
	"context"
	"sync"
)

// slots bounds the provider requests in flight in this process: sent (or
// about to be) and not yet recorded. Feeders take up to a chunk's worth at
// once and the marker gives back a whole flush's at once: at hundreds of
// thousands of sends per second, a channel operation per send on each side
// cost more than the send.
type slots struct {
	mu   sync.Mutex
	free int
	wake chan struct{} // closed when slots are given back; nil while nobody waits
}

func newSlots(n int) *slots { return &slots{free: n} }

// take waits until a slot is free and takes up to n (n ≥ 1).
func (s *slots) take(ctx context.Context, n int) (int, error) {
	for {
		s.mu.Lock()
		if s.free > 0 {
			k := min(n, s.free)
			s.free -= k
			s.mu.Unlock()
			return k, nil
		}
		if s.wake == nil {
			s.wake = make(chan struct{})
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// give returns n slots and wakes whoever waits for one.
func (s *slots) give(n int) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	s.free += n
	wake := s.wake
	s.wake = nil
	s.mu.Unlock()
	if wake != nil {
		close(wake)
	}
}
