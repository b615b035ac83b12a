package deliver

import (
	"context"
	"sync"
	"time"
)

// slots bounds the provider requests in flight in this process: sent (or
// about to be) and not yet recorded. Feeders take up to a chunk's worth at
// once and the marker gives back a whole flush's at once: at hundreds of
// thousands of sends per second, a channel operation per send on each side
// cost more than the send.
type slots struct {
	mu   sync.Mutex
	size int
	used int
	// limit, when set, is how many may be in use at now, at most size: the
	// bulk lane's while the express lane falls behind (yield.go). Slots
	// over it come free only as sends end.
	limit func(now time.Time) int
	wake  chan struct{} // closed when slots are given back; nil while nobody waits
}

func newSlots(n int) *slots { return &slots{size: n} }

// take waits until a slot is free and takes up to n (n ≥ 1).
func (s *slots) take(ctx context.Context, n int) (int, error) {
	for {
		s.mu.Lock()
		free := s.size - s.used
		if s.limit != nil {
			free = min(free, s.limit(time.Now())-s.used)
		}
		if free > 0 {
			k := min(n, free)
			s.used += k
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
	s.used -= n
	wake := s.wake
	s.wake = nil
	s.mu.Unlock()
	if wake != nil {
		close(wake)
	}
}
