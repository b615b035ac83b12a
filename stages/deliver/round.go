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
// rate-limit permits and hand sends to workers; each send's slot is freed
// (settle) once its outcome is recorded.
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
	settle  func(error) // r.free, made once
}

func (h *Handler) newRound(ctx context.Context, p, targets int) *round {
	r := &round{h: h, ctx: ctx, p: p, results: make([]userResult, targets), skipped: map[*campaign][]int64{}}
	r.settle = r.free
	return r
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

// free settles one send: its outcome is recorded (or recording failed).
func (r *round) free(err error) {
	if err != nil {
		r.fail(err)
	}
	<-r.h.sem
	r.h.metrics.inFlight.Dec()
	r.sends.Done()
}

// feed starts the sends of one provider and app: it takes an in-flight slot
// and then a permit of their rate limit per job, so a provider at its cap
// holds one slot waiting, not all of them. Jobs go to workers in chunks
// sized by how fast the provider answers (chunkSize).
func (r *round) feed(jobs []job) {
	h := r.h
	var chunk []job
	defer func() { r.dispatch(chunk) }()
	for n, j := range jobs {
		if len(chunk) > 0 && len(chunk) >= h.chunkSize(j.d.platform) {
			r.dispatch(chunk)
			chunk = nil
		}
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
		if h.campaignFailed(j.c.ID) != "" {
			r.mu.Lock()
			r.skipped[j.c] = append(r.skipped[j.c], j.d.id)
			r.mu.Unlock()
			continue
		}
		select {
		case h.sem <- struct{}{}:
		default:
			// No slot free: send what is gathered before waiting.
			r.dispatch(chunk)
			chunk = nil
			select {
			case h.sem <- struct{}{}:
			case <-r.ctx.Done():
				return
			}
		}
		if h.senders[j.d.platform] != nil {
			if err := h.limiter.wait(r.ctx, providerOf(j.d.platform), j.c.App); err != nil {
				<-h.sem
				if r.ctx.Err() == nil {
					r.fail(err)
				}
				return
			}
		}
		h.metrics.inFlight.Inc()
		r.sends.Add(1)
		if chunk == nil {
			chunk = make([]job, 0, min(h.chunkSize(j.d.platform), len(jobs)-n))
		}
		chunk = append(chunk, j)
	}
}

// dispatch runs a chunk of jobs, each holding its slot, on a worker, one
// after the other; if one turns out slow, the rest go to workers of their
// own.
func (r *round) dispatch(chunk []job) {
	if len(chunk) == 0 {
		return
	}
	r.h.workers.run(func() {
		for i, j := range chunk {
			start := time.Now()
			r.send(j)
			if i < len(chunk)-1 && time.Since(start) > slowSend {
				for _, j := range chunk[i+1:] {
					r.h.workers.run(func() { r.send(j) })
				}
				return
			}
		}
	})
}

// send sends one job. A terminal outcome is settled by the marker once
// marked; a transient one is recorded for the caller to schedule.
func (r *round) send(j job) {
	res, marking, err := r.h.sendOne(r.ctx, r.p, j.c, j.d, r.settle)
	if marking {
		return
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
	r.settle(err)
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
