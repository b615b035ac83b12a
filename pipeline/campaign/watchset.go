package campaign

import (
	"sync"
	"sync/atomic"
)

// The watchers (Cancels, Rates) follow the campaigns a process asks about:
// the first question reads Redis, and from then on one poller refreshes
// every campaign asked about within Forget, dropping the others, and ends
// when none is left. watchSet is that bookkeeping, the watchers' own reads
// aside.

// asked is when a campaign was last asked about, and when the read that
// answers now was sent: every watcher's watch holds them.
type asked struct {
	at   atomic.Int64 // unix ns of the last question
	read atomic.Int64 // unix ns when the read that answered was sent
}

func (a *asked) times() *asked { return a }

// A watch is one campaign's entry in a watchSet.
type watch interface{ times() *asked }

// watchSet is a watcher's campaigns, by id. The zero value is empty.
type watchSet[W watch] struct {
	mu      sync.Mutex
	watched map[string]W
	polling bool
}

// get is id's watch, and whether it is watched.
func (s *watchSet[W]) get(id string) (W, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.watched[id]
	return w, ok
}

// add watches id (asked about at now) as fresh unless it is already, and
// starts poll unless it is running.
func (s *watchSet[W]) add(id string, now int64, fresh W, poll func()) W {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watched == nil {
		s.watched = map[string]W{}
	}
	w, ok := s.watched[id]
	if !ok {
		w = fresh
		w.times().at.Store(now)
		s.watched[id] = w
	}
	if !s.polling {
		s.polling = true
		go poll()
	}
	return w
}

// len is how many campaigns are watched.
func (s *watchSet[W]) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watched)
}

// sweep forgets the campaigns not asked about since forget (unix ns) and
// returns those of the others read selects. It returns false when none is
// left: the poller is then over, and the next add starts another (decided
// under the lock, so no campaign is added to a set nobody polls).
func (s *watchSet[W]) sweep(forget int64, read func(W) bool) (ids []string, ws []W, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, w := range s.watched {
		switch {
		case w.times().at.Load() < forget:
			delete(s.watched, id)
		case read(w):
			ids, ws = append(ids, id), append(ws, w)
		}
	}
	if len(s.watched) == 0 {
		s.polling = false
		return nil, nil, false
	}
	return ids, ws, true
}
