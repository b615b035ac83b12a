package fakeprovider

import (
	"sync"
	"time"
)

// Window is how the fake counts requests against its TPS cap.
type Window string

// Windows. A real provider documents a rate, not the phase of the second it
// counts in, so a client has to stay under the cap in every one-second
// window; sliding checks exactly that, fixed is one provider's way of
// counting whose windows a client cannot see.
const (
	// WindowSliding accepts no more than TPS requests in any one-second
	// window, whatever its phase.
	WindowSliding Window = "sliding"
	// WindowFixed counts in one-second windows of its own that start at its
	// first request, not at a Unix second: a client that counts per Unix
	// second does not line up with them.
	WindowFixed Window = "fixed"
)

func (w Window) valid() bool { return w == "" || w == WindowSliding || w == WindowFixed }

// rateGate decides whether a request that arrives at now fits the cap; one
// that fits counts against the cap, one that does not is not counted.
// retryAfter is when the next request would fit.
type rateGate interface {
	admit(now time.Time) (ok bool, retryAfter time.Duration)
}

func newRateGate(w Window, tps int) rateGate {
	switch {
	case tps <= 0:
		return nil
	case w == WindowFixed:
		return &fixedWindow{tps: tps}
	default:
		return &slidingWindow{ring: make([]int64, tps)}
	}
}

// slidingWindow keeps the times of the last tps accepted requests, oldest
// at head: a request fits when the oldest of them is at least a second old,
// so that every half-open one-second window holds at most tps.
type slidingWindow struct {
	mu   sync.Mutex
	ring []int64 // Unix ns
	head int
	n    int // filled so far, up to len(ring)
}

func (s *slidingWindow) admit(now time.Time) (bool, time.Duration) {
	t := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n < len(s.ring) {
		s.ring[(s.head+s.n)%len(s.ring)] = t
		s.n++
		return true, 0
	}
	if wait := s.ring[s.head] + int64(time.Second) - t; wait > 0 {
		return false, time.Duration(wait)
	}
	s.ring[s.head] = t
	s.head = (s.head + 1) % len(s.ring)
	return true, 0
}

// fixedWindow counts in consecutive one-second windows from its first
// request on.
type fixedWindow struct {
	tps int

	mu    sync.Mutex
	start time.Time // of the first window; zero before the first request
	index int64     // the window n counts in
	n     int
}

func (f *fixedWindow) admit(now time.Time) (bool, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.start.IsZero() {
		f.start = now
	}
	i := int64(now.Sub(f.start) / time.Second)
	if i != f.index {
		f.index, f.n = i, 0
	}
	if f.n >= f.tps {
		return false, f.start.Add(time.Duration(i+1) * time.Second).Sub(now)
	}
	f.n++
	return true, 0
}
