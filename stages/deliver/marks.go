package deliver

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// marker group-commits sent marks: a device's mark is written right after
// its answer, but the marks of devices answered while the previous write was
// on its way go together, in one script call per partition and campaign.
// At tens of thousands of sends per second that is a few hundred Redis calls
// instead of one per send; each sender still waits until its own mark is
// durable before it frees its in-flight slot.
type marker struct {
	h *Handler

	mu       sync.Mutex
	queue    []*markReq
	flushing bool
}

type markReq struct {
	p       int
	c       *campaign
	member  string
	outcome push.Outcome
	done    chan error
}

// mark queues one device's terminal outcome and waits until it is written.
func (m *marker) mark(ctx context.Context, p int, c *campaign, o push.Outcome, member string) error {
	r := &markReq{p: p, c: c, member: member, outcome: o, done: make(chan error, 1)}
	m.mu.Lock()
	m.queue = append(m.queue, r)
	if !m.flushing {
		m.flushing = true
		go m.flushLoop()
	}
	m.mu.Unlock()
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flushLoop writes what is queued until the queue stays empty.
func (m *marker) flushLoop() {
	for {
		m.mu.Lock()
		q := m.queue
		m.queue = nil
		if len(q) == 0 {
			m.flushing = false
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		m.flush(q)
	}
}

// flush writes one group of marks per partition and campaign, concurrently
// (rueidis pipelines them), and hands each request its group's result. It
// does not use a caller's context: a mark whose sender gave up is still
// worth writing.
func (m *marker) flush(q []*markReq) {
	type group struct {
		p    int
		c    *campaign
		reqs []*markReq
	}
	type gkey struct {
		p  int
		id string
	}
	groups := map[gkey]*group{}
	for _, r := range q {
		k := gkey{r.p, r.c.ID}
		g := groups[k]
		if g == nil {
			g = &group{p: r.p, c: r.c}
			groups[k] = g
		}
		g.reqs = append(g.reqs, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Go(func() {
			args := make([]string, 0, 2+2*len(g.reqs))
			args = append(args, strconv.FormatInt(int64(marksTTL(g.c)/time.Second), 10), strconv.FormatInt(time.Now().UnixMilli(), 10))
			for _, r := range g.reqs {
				args = append(args, r.member, counterOf(r.outcome))
			}
			err := m.h.execMarks(ctx, g.p, g.c, args)
			for _, r := range g.reqs {
				r.done <- err
			}
		})
	}
	wg.Wait()
}
