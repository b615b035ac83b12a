package deliver

import (
	"context"
	"sync"
	"time"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// marker group-commits sent marks: a device's mark is written right after
// its answer, but the marks of devices answered while an earlier write was
// on its way go together, in one script call per partition and campaign. At
// tens of thousands of sends per second that is a few hundred Redis calls
// instead of one per send; each sender still waits until its own mark is
// durable before it frees its in-flight slot.
type marker struct {
	h *Handler

	mu       sync.Mutex
	cur      *markBatch // collecting; nil when nothing waits
	flushers int
}

// maxFlushers bounds the mark writes on their way at once: two keep a
// mark's wait near one round trip while batches stay large.
const maxFlushers = 2

// markBatch is the marks written together; done is closed once they are.
type markBatch struct {
	reqs []markReq
	done chan struct{}
	err  error
}

type markReq struct {
	p       int
	c       *campaign
	member  string
	outcome push.Outcome
}

// mark queues one device's terminal outcome and waits until it is written.
func (m *marker) mark(ctx context.Context, p int, c *campaign, o push.Outcome, member string) error {
	m.mu.Lock()
	if m.cur == nil {
		m.cur = &markBatch{done: make(chan struct{})}
	}
	b := m.cur
	b.reqs = append(b.reqs, markReq{p: p, c: c, member: member, outcome: o})
	if m.flushers < maxFlushers {
		m.flushers++
		go m.flushLoop()
	}
	m.mu.Unlock()
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flushLoop writes batches until none is waiting.
func (m *marker) flushLoop() {
	for {
		m.mu.Lock()
		b := m.cur
		m.cur = nil
		if b == nil {
			m.flushers--
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		b.err = m.flush(b.reqs)
		close(b.done)
	}
}

// flush writes one group of marks per partition and campaign, concurrently
// (rueidis pipelines them). It does not use a caller's context: a mark whose
// sender gave up is still worth writing.
func (m *marker) flush(reqs []markReq) error {
	type gkey struct {
		p  int
		id string
	}
	type group struct {
		p         int
		c         *campaign
		byCounter map[string][]string
	}
	groups := map[gkey]*group{}
	for _, r := range reqs {
		k := gkey{r.p, r.c.ID}
		g := groups[k]
		if g == nil {
			g = &group{p: r.p, c: r.c, byCounter: map[string][]string{}}
			groups[k] = g
		}
		counter := counterOf(r.outcome)
		g.byCounter[counter] = append(g.byCounter[counter], r.member)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if len(groups) == 1 {
		for _, g := range groups {
			return m.h.execMarks(ctx, g.p, g.c, g.byCounter)
		}
	}
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for _, g := range groups {
		wg.Go(func() {
			if err := m.h.execMarks(ctx, g.p, g.c, g.byCounter); err != nil {
				once.Do(func() { first = err })
			}
		})
	}
	wg.Wait()
	return first
}
