package deliver

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// job is one device of a target to send to.
type job struct {
	i int // the target's index in the round
	c *campaign
	d device
}

// round is one deliverTargets call: its feeders take in-flight slots and
// rate-limit permits and hand chunks of sends to workers; the slots of
// sends are freed (settled) once their outcomes are recorded.
type round struct {
	h       *Handler
	ctx     context.Context
	p       int
	results []userResult

	mu      sync.Mutex // results and skipped
	skipped map[*campaign][]int64
	sends   sync.WaitGroup // from a send's slot to its settle
	errOnce sync.Once
	first   error
	broken  atomic.Bool // a send could not be recorded: start no more
	stopped atomic.Bool // the process is shutting down
}

func (h *Handler) newRound(ctx context.Context, p, targets int) *round {
	return &round{h: h, ctx: ctx, p: p, results: make([]userResult, targets), skipped: map[*campaign][]int64{}}
}

func (r *round) fail(err error) {
	r.errOnce.Do(func() { r.first = err; r.broken.Store(true) })
}

// err is why the round ended early, if it did.
func (r *round) err() error {
	switch {
	case r.first != nil:
		return r.first
	case r.ctx.Err() != nil:
		return r.ctx.Err()
	case r.stopped.Load():
		return errStopping
	}
	return nil
}

// started counts n sends that hold slots.
func (r *round) started(n int) {
	r.h.metrics.inFlight.Add(float64(n))
	r.sends.Add(n)
}

// settled frees the slots of n sends whose outcomes are recorded (or could
// not be: err).
func (r *round) settled(err error, n int) {
	if err != nil {
		r.fail(err)
	}
	r.h.slots.give(n)
	r.h.metrics.inFlight.Sub(float64(n))
	r.sends.Add(-n)
}

// feed starts the sends of one provider and app: it takes as many
// in-flight slots as a chunk holds (at least one, when one is free), then a
// permit of their rate limit per job, and hands the chunk to a worker.
// Chunks are sized by how fast the provider answers (chunkSize): one job
// over the network, so a provider at its cap holds one slot waiting, not
// all of them.
func (r *round) feed(jobs []job) {
	h := r.h
	for len(jobs) > 0 {
		if r.broken.Load() || r.ctx.Err() != nil {
			return
		}
		if h.stopping.Load() {
			// Shutting down: finish what is in flight, start nothing; the
			// entries stay pending and their unmarked devices are sent by
			// whoever takes them over.
			r.stopped.Store(true)
			return
		}
		n, err := h.slots.take(r.ctx, min(h.chunkSize(jobs[0].d.platform), len(jobs)))
		if err != nil {
			return
		}
		chunk := make([]job, 0, n)
		var stop error
		for _, j := range jobs[:n] {
			if h.campaignFailed(j.c.ID) != "" {
				r.mu.Lock()
				r.skipped[j.c] = append(r.skipped[j.c], j.d.id)
				r.mu.Unlock()
				continue
			}
			if h.senders[j.d.platform] != nil {
				if stop = h.limiter.wait(r.ctx, providerOf(j.d.platform), j.c.App); stop != nil {
					break
				}
			}
			chunk = append(chunk, j)
		}
		jobs = jobs[n:]
		h.slots.give(n - len(chunk))
		r.started(len(chunk))
		r.dispatch(chunk)
		if stop != nil {
			if r.ctx.Err() == nil {
				r.fail(stop)
			}
			return
		}
	}
}

// dispatch runs a chunk of jobs, each holding its slot, on a worker.
func (r *round) dispatch(chunk []job) {
	if len(chunk) > 0 {
		r.h.workers.run(func() { r.sendChunk(chunk) })
	}
}

// sendChunk sends a chunk's jobs one after the other and hands their
// terminal outcomes to the marker together. If a send turns out slow, the
// rest go to workers of their own.
func (r *round) sendChunk(chunk []job) {
	var one [1]markReq
	marks := one[:0]
	t0 := time.Now()
	for i, j := range chunk {
		if m, ok := r.send(j); ok {
			marks = append(marks, m)
		}
		t1 := time.Now()
		took := t1.Sub(t0)
		t0 = t1
		r.h.observeSend(j.d.platform, took)
		if took > slowSend && i < len(chunk)-1 {
			r.h.marker.markAll(marks)
			for _, j := range chunk[i+1:] {
				r.dispatch([]job{j})
			}
			return
		}
	}
	r.h.marker.markAll(marks)
}

// send sends one job. A terminal outcome comes back to be marked (ok); a
// transient one is recorded for the caller to schedule and its slot freed.
func (r *round) send(j job) (markReq, bool) {
	res, mark, err := r.h.sendOne(r.ctx, j.c, j.d)
	if mark {
		return markReq{p: r.p, c: j.c, id: j.d.id, outcome: res.Outcome, r: r}, true
	}
	if err == nil && res.Outcome == push.Retry {
		r.mu.Lock()
		u := &r.results[j.i]
		u.retry++
		u.retried = append(u.retried, j.d.id)
		u.retryAfter = max(u.retryAfter, res.RetryAfter)
		u.reason = res.Reason
		r.mu.Unlock()
	}
	r.settled(err, 1)
	return markReq{}, false
}

// A feeder hands a worker a chunk of sends that run one after the other
// when the provider answers within a fraction of chunkTarget (an in-process
// sink): then a goroutine hand-off per send would cost more than the send.
// Over the network the chunk is one send, and each send has its worker.
const (
	chunkTarget = 50 * time.Microsecond
	maxChunk    = 64
	slowSend    = time.Millisecond // a chunk whose send took this long hands out its rest
	// firstSend is what a provider is assumed to take before it answered:
	// slow, so that chunks only form once sends are seen to be quick.
	firstSend = 10 * time.Millisecond
)

// sendTimes is a moving average of how long each provider's sends take.
type sendTimes map[push.Platform]*atomic.Int64

func newSendTimes(senders map[push.Platform]push.Sender) sendTimes {
	t := sendTimes{}
	for p := range senders {
		t[p] = &atomic.Int64{}
		t[p].Store(int64(firstSend))
	}
	return t
}

// observeSend adds a send's duration to its platform's average (1/8 weight;
// concurrent updates may drop one, which an average can afford).
func (h *Handler) observeSend(p push.Platform, d time.Duration) {
	if avg := h.sendTimes[p]; avg != nil {
		old := avg.Load()
		avg.Store(old + (int64(d)-old)/8)
	}
}

// chunkSize is how many sends of platform p a worker gets at once.
func (h *Handler) chunkSize(p push.Platform) int {
	avg := h.sendTimes[p]
	if avg == nil {
		return maxChunk // no sender: marked failed at once
	}
	return int(min(max(int64(chunkTarget)/max(avg.Load(), 1), 1), maxChunk))
}
