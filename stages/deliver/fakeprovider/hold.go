package fakeprovider

import (
	"net/http"
	"sync"
	"sync/atomic"
)

// hold keeps admitted requests from being answered until it is released:
// a test that must catch sends in flight (a reload, a kill) holds them
// there instead of racing a latency against a loaded machine.
type hold struct {
	// on is gate != nil, read without the lock: every request asks, and
	// benchmarks send tens of thousands a second through one fake.
	on      atomic.Bool
	mu      sync.Mutex
	gate    chan struct{} // nil: not holding; closed on release
	waiting int
}

// Hold makes every request admitted from now on wait, unanswered, until
// the returned release is called. There is one hold at a time: a Hold
// while one is on joins it, and any of their releases ends it (a release
// called again, or after that, does nothing). Held says how many wait. A
// request whose client gives up stops waiting.
func (s *Server) Hold() (release func()) {
	s.hold.mu.Lock()
	defer s.hold.mu.Unlock()
	if s.hold.gate == nil {
		s.hold.gate = make(chan struct{})
		s.hold.on.Store(true)
	}
	gate := s.hold.gate
	return func() {
		s.hold.mu.Lock()
		defer s.hold.mu.Unlock()
		if s.hold.gate == gate {
			close(gate)
			s.hold.gate = nil
			s.hold.on.Store(false)
		}
	}
}

// Held is how many requests Hold keeps waiting now.
func (s *Server) Held() int {
	s.hold.mu.Lock()
	defer s.hold.mu.Unlock()
	return s.hold.waiting
}

// wait blocks r while a hold is on; false: its client gave up meanwhile.
func (s *Server) wait(r *http.Request) bool {
	if !s.hold.on.Load() {
		return true
	}
	s.hold.mu.Lock()
	gate := s.hold.gate
	if gate == nil {
		s.hold.mu.Unlock()
		return true
	}
	s.hold.waiting++
	s.hold.mu.Unlock()
	defer func() {
		s.hold.mu.Lock()
		s.hold.waiting--
		s.hold.mu.Unlock()
	}()
	select {
	case <-gate:
		return true
	case <-r.Context().Done():
		return false
	}
}
