package deliver

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// marker group-commits sent marks: a device's mark is written right after
// its answer, but the marks of devices answered while an earlier write was
// on its way go together, in one script call per partition and campaign. At
// tens of thousands of sends per second that is a few hundred Redis calls
// instead of one per send. A sender does not wait for its mark: the marker
// settles the send's round once the mark is durable, and that is what frees
// its in-flight slot, so a crash still repeats at most InFlight sends while
// the worker goes on to the next one.
type marker struct {
	h *Handler

	mu       sync.Mutex
	cur      []markReq // collecting; empty when nothing waits
	flushers int

	// chunks holds the buffers a chunk of sends collects its marks in
	// (*[]markReq of capacity maxChunk). On the worker's stack, 7 kB of
	// them grew its stack on every chunk after the garbage collector had
	// shrunk it while idle: copying stacks was a tenth of deliver's CPU in
	// the 3M-user campaign's profile.
	chunks sync.Pool
	// records holds the buffers its mark calls build their result events'
	// records in (results.go).
	records recordBufs
}

// chunkMarks is an empty buffer for a chunk's marks, for markChunk.
func (m *marker) chunkMarks() *[]markReq {
	if b, ok := m.chunks.Get().(*[]markReq); ok {
		return b
	}
	b := make([]markReq, 0, maxChunk)
	return &b
}

// markChunk is markAll of marks, collected in buf (chunkMarks), which it
// then takes back.
func (m *marker) markChunk(buf *[]markReq, marks []markReq) {
	m.markAll(marks) // copies them
	clear(marks)     // let campaigns and rounds go
	*buf = marks[:0]
	m.chunks.Put(buf)
}

// maxFlushers bounds the mark writes on their way at once. One: a write
// carries everything that came in while the previous one was on its way,
// so batches stay large, and the wait for a mark is at most two writes.
const maxFlushers = 1

type markReq struct {
	p       int
	c       *campaign
	d       device
	outcome push.Outcome
	reason  string // the provider's, for the result event
	unsent  bool   // failed with no provider request (pipeline.StatUnsent)
	r       *round // settled once the mark is written (or failed); nil outside the marker
	i       int    // the target's index in r
	// forcedSent is the record of the forced entry whose round marks d
	// (forcedsent.go), written in the same call; "" for an unforced one.
	forcedSent string
}

// markAll queues terminal outcomes of devices; their rounds are settled
// when the marks are written, with the error if they could not be.
func (m *marker) markAll(reqs []markReq) {
	if len(reqs) == 0 {
		return
	}
	m.mu.Lock()
	m.cur = append(m.cur, reqs...)
	if m.flushers < maxFlushers {
		m.flushers++
		go m.flushLoop()
	}
	m.mu.Unlock()
}

// flushLoop writes batches until none is waiting. The requests of one
// chunk of sends come in a run: each run's round is settled at once.
func (m *marker) flushLoop() {
	var spare []markReq
	for {
		m.mu.Lock()
		reqs := m.cur
		if len(reqs) == 0 {
			m.flushers--
			m.mu.Unlock()
			return
		}
		m.cur = spare[:0]
		m.mu.Unlock()
		err := m.flushRetrying(reqs)
		for i := 0; i < len(reqs); {
			j := i + 1
			for j < len(reqs) && reqs[j].r == reqs[i].r {
				j++
			}
			if err == nil {
				reqs[i].r.marked(reqs[i:j])
			}
			reqs[i].r.settled(err, j-i)
			i = j
		}
		clear(reqs) // let campaigns and rounds go
		spare = reqs
	}
}

// markRetryFor bounds how long a mark is tried again while Redis cannot
// take it (a restart, a failover): longer than either takes, short enough
// that a stage whose Redis is gone for good stops (its round fails, and the
// batch is redone once Redis is back).
const markRetryFor = 30 * time.Second

// flushRetrying is flush, tried again while Redis is away (untilRedisBack).
// The provider has these notifications already: a mark given up on makes
// the batch's retry send them again although no process died. Their slots
// stay taken meanwhile, so an outage holds new sends back (InFlight at most
// wait for their marks) instead of repeating them. Marks are idempotent
// (they count and write results for new bits only), so a write that
// reached Redis but whose answer was lost is harmless to repeat.
//
// A panic while writing (a bug on some input) is the error of the rounds
// of reqs, not the end of the process; it is not tried again.
func (m *marker) flushRetrying(reqs []markReq) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = m.h.panicked(p)
		}
	}()
	return m.h.untilRedisBack("marks", func() error { return m.flush(reqs) })
}

// untilRedisBack runs write, a Redis write that records what a provider
// answered, and runs it again with backoff while its error may pass (Redis
// unreachable, loading, failing over), for up to markRetryFor: given up
// on, the batch's retry would send again what the provider has. write must
// be idempotent.
func (h *Handler) untilRedisBack(what string, write func() error) error {
	deadline := time.Now().Add(markRetryFor)
	wait := 20 * time.Millisecond
	for {
		err := write()
		if err == nil || !mayPass(err) || time.Now().Add(wait).After(deadline) {
			return err
		}
		h.log.Warn().Err(err).Str("what", what).Msg("not written; trying again")
		time.Sleep(wait)
		wait = min(2*wait, time.Second)
	}
}

// mayPass reports whether a Redis call's error may go away by itself: no
// answer at all (a connection refused, reset or timed out), or an answer
// saying Redis is not ready yet. An error reply to the script itself will
// not.
func mayPass(err error) bool {
	if errors.Is(err, rueidis.ErrClosing) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // the process is closing its client, or the caller gave up
	}
	re, ok := rueidis.IsRedisErr(err)
	if !ok {
		return true
	}
	if re.IsLoading() || re.IsTryAgain() || re.IsClusterDown() {
		return true
	}
	for _, prefix := range []string{"MASTERDOWN", "READONLY", "NOREPLICAS", "BUSY "} {
		if strings.HasPrefix(re.Error(), prefix) {
			return true
		}
	}
	return false
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
		p     int
		c     *campaign
		marks []markReq
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Nearly always one partition and campaign: written as they are (a
	// copy into groups was ~440 bytes of garbage a send). execMarks keeps
	// their order, which flushLoop reads the rounds back in.
	if !slices.ContainsFunc(reqs, func(r markReq) bool { return r.p != reqs[0].p || r.c != reqs[0].c }) {
		return m.h.execMarksIn(ctx, reqs[0].p, reqs[0].c, reqs, &m.records)
	}
	// Else one copy of reqs, each group a window of it: appending to a
	// slice per group grew each one by doubling. Requests come in runs of
	// one round (one partition and campaign), so a run looks its group up
	// once.
	index := map[gkey]int{}
	var groups []group
	of := make([]int, len(reqs)) // each request's group
	for i, r := range reqs {
		if i > 0 && r.p == reqs[i-1].p && r.c == reqs[i-1].c {
			of[i] = of[i-1]
			continue
		}
		k := gkey{r.p, r.c.ID}
		g, ok := index[k]
		if !ok {
			g = len(groups)
			index[k] = g
			groups = append(groups, group{p: r.p, c: r.c})
		}
		of[i] = g
	}
	sizes := make([]int, len(groups))
	for _, g := range of {
		sizes[g]++
	}
	all, at := make([]markReq, len(reqs)), 0
	for g, n := range sizes {
		groups[g].marks = all[at : at : at+n]
		at += n
	}
	for i, r := range reqs {
		groups[of[i]].marks = append(groups[of[i]].marks, r)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		first  error
		raised any // a group's panic
	)
	for _, g := range groups {
		wg.Go(func() {
			// Raised again below, on the marker's goroutine, whose
			// flushRetrying turns it into the rounds' error: here it would
			// end the process.
			defer func() {
				if p := recover(); p != nil {
					mu.Lock()
					raised = p
					mu.Unlock()
				}
			}()
			if err := m.h.execMarksIn(ctx, g.p, g.c, g.marks, &m.records); err != nil {
				mu.Lock()
				first = cmp.Or(first, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if raised != nil {
		panic(raised)
	}
	return first
}
