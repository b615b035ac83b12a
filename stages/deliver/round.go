package deliver

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
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

	// wait is ctx, also cancelled once the batch is lost (pipeline.Batch.Lost):
	// feeders wait for slots and permits under it, so a lost batch starts no
	// more sends, while sends in flight (under ctx) finish and are marked.
	wait       context.Context
	cancelWait context.CancelFunc
	lost       <-chan struct{}
	stop       <-chan struct{}            // pipeline.Batch.Stopping
	waitHeld   func(context.Context) bool // pipeline.Batch.WaitHeld
	emit       emitFunc
	progress   func()   // pipeline.Batch.Progress: a round at the provider's pace may take minutes
	slots      *slots   // the batch's lane's
	limiter    *limiter // the batch's lane's
	marker     *marker  // the batch's lane's
	express    bool     // the batch is the express lane's
	// away reports whether Redis went away for the partition since the
	// round began: then it counts no one done (marksgone.go).
	away func() bool

	mu      sync.Mutex        // results and skipped
	skipped map[skip][]device // devices failed unsent: their campaign failed, or expired
	sends   sync.WaitGroup    // from a send's slot to its settle
	errOnce sync.Once
	first   error
	broken  atomic.Bool // a send could not be recorded: start no more
	// firstSent is when a provider first accepted a send of the round, unix
	// ns (0 before): the accept → first send histogram's end.
	firstSent atomic.Int64
	stopped   atomic.Bool // the process is shutting down
	// left is, per target, its devices whose outcomes are not marked yet
	// (doneearly.go).
	left []atomic.Int32
	// forcedSent is, per target, the record its marks also go to
	// (forcedsent.go); nil when no target is forced.
	forcedSent []string
}

// newRound starts a round of batch b. end must be called when the round is
// over.
func (h *Handler) newRound(ctx context.Context, b *pipeline.Batch, targets int) *round {
	lost := b.Lost()
	r := &round{h: h, ctx: ctx, away: h.awayFrom(b), p: b.Partition, lost: lost, stop: b.Stopping(), waitHeld: b.WaitHeld, emit: b.EmitNow, progress: b.Progress,
		slots: h.slots, limiter: h.limiter, marker: h.marker,
		results: make([]userResult, targets), skipped: map[skip][]device{}, left: make([]atomic.Int32, targets)}
	if b.Lane == pipeline.Express {
		// Slots, permits and marks of its own: an express round's feeders
		// never queue behind a bulk round's, which may hold every bulk slot
		// for as long as the cap makes a campaign's chunk take.
		r.slots, r.limiter, r.marker, r.express = h.express.slots, h.express.limiter, h.express.marker, true
		// How long its oldest entry waited for deliver: the share of a
		// message's latency that is deliver's queue, not its sends. A
		// claimed batch's wait is the claim's --claim-idle.
		if !b.Claimed() && len(b.Entries) > 0 {
			now := time.Now()
			waited := h.clock.now(now).Sub(oldest(b.Entries))
			h.metrics.expressWait.Observe(max(waited, 0).Seconds())
			if h.cfg.ExpressTarget > 0 {
				h.yield.late(waited, now)
			}
		}
	}
	r.wait, r.cancelWait = context.WithCancel(ctx)
	if lost != nil {
		go func() {
			select {
			case <-lost:
				r.cancelWait()
			case <-r.wait.Done():
			}
		}()
	}
	return r
}

func (r *round) end() { r.cancelWait() }

// isLost reports whether the batch of the round was lost.
func (r *round) isLost() bool { return closed(r.lost) }

// closed reports whether c is closed (never, for nil).
func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
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
	case r.isLost():
		return errBatchLost
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
	r.slots.give(n)
	r.h.metrics.inFlight.Sub(float64(n))
	r.sends.Add(-n)
	r.progress()
}

// feed starts the sends of one provider and app: it takes as many
// in-flight slots as a chunk holds (at least one, when one is free), then a
// permit of their rate limit per job, and hands the chunk to a worker.
// Chunks are sized by how fast the provider answers (chunkSize): one job
// over the network, so a provider at its cap holds one slot waiting, not
// all of them.
func (r *round) feed(l *appLane, jobs []job) {
	h := r.h
	held := 0 // slots taken for the window and not yet given back or started
	defer func() {
		if p := recover(); p != nil {
			r.slots.give(held) // or the stage would run short of slots for good
			r.fail(h.panicked(p))
		}
	}()
	for len(jobs) > 0 {
		if r.broken.Load() || r.wait.Err() != nil {
			return // broken, cancelled, or the batch is lost
		}
		if closed(r.stop) {
			// Shutting down: finish what is in flight, start nothing; the
			// entries stay pending and their unmarked devices are sent by
			// whoever takes them over.
			r.stopped.Store(true)
			return
		}
		n, err := r.slots.take(r.wait, min(l.chunkSize(), len(jobs)))
		if err != nil {
			return
		}
		held = n
		// The chunk is the window jobs[:n] less skipped jobs, compacted in
		// place: this feeder never looks at the window again.
		window, k := jobs[:n:n], 0
		var (
			stop     error
			c        *campaign // the last job's, why its jobs are failed unsent, and whether it was canceled
			failed   string
			canceled bool
			serves   bool // the lane's sender has credentials for c's app
		)
		now := time.Now()
		for _, j := range window {
			if j.c != c {
				c, failed = j.c, h.campaignFailed(j.c.ID)
				serves = l.serves(c.App)
				if failed == "" && c.expired(now) {
					failed = ReasonExpired // before its permits: an expired capped campaign is not failed at its cap
				}
				if canceled, stop = h.life.canceled(r.wait, c); stop != nil {
					break
				}
			}
			if canceled {
				r.leftByCancel(j) // not sent, not counted: the campaign's counts stay as they are
				continue
			}
			if failed != "" {
				r.mu.Lock()
				k := skip{j.c, failed}
				r.skipped[k] = append(r.skipped[k], j.d)
				r.mu.Unlock()
				continue
			}
			// A device its app has no credentials for fails at once: it
			// took the campaign's and the provider's permits, and so failed
			// at their pace (a capped campaign of an app without FCM took
			// hours to fail its Android devices) and spent the app's.
			if serves {
				if stop = h.life.wait(r.wait, j.c); stop != nil {
					break
				}
				if stop = r.permit(l, j.c); stop != nil {
					break
				}
			}
			window[k] = j
			k++
		}
		chunk := window[:k]
		jobs = jobs[n:]
		r.slots.give(n - len(chunk))
		r.started(len(chunk))
		held = 0
		r.dispatch(l, chunk)
		if stop != nil {
			if r.wait.Err() == nil {
				r.fail(stop)
			}
			return
		}
	}
}

// permit waits for a send's rate-limit permit. An express send that waits
// long for one tells the yield its lane is held back by its own cap.
func (r *round) permit(l *appLane, c *campaign) error {
	if !r.express || r.limiter.off(c.App) {
		return r.limiter.wait(r.wait, l.provider, c.App)
	}
	t := time.Now()
	err := r.limiter.wait(r.wait, l.provider, c.App)
	now := time.Now()
	r.h.yield.permitWait(now.Sub(t), now)
	return err
}

// oldest is when the first written of entries was.
func oldest(entries []pipeline.Entry) time.Time {
	t := entries[0].Written()
	for _, e := range entries[1:] {
		if w := e.Written(); w.Before(t) {
			t = w
		}
	}
	return t
}

// dispatch runs a chunk of jobs, each holding its slot, on a worker.
func (r *round) dispatch(l *appLane, chunk []job) {
	if len(chunk) > 0 {
		r.h.workers.run(func() { r.sendChunk(l, chunk) })
	}
}

// sendChunk sends a chunk's jobs one after the other and hands their
// terminal outcomes to the marker together. If a send turns out slow, the
// rest go to workers of their own.
//
// A panic (a sender's, most likely) fails the round: what was sent before
// it is marked, and the slots of the job it hit and of those after it are
// freed, so the stage keeps its slots and goes on serving other batches.
func (r *round) sendChunk(l *appLane, chunk []job) {
	buf := r.marker.chunkMarks()
	marks := *buf
	handed := false // marks given to the marker, and buf back in its pool
	done := 0       // jobs settled, or whose marks are in marks
	defer func() {
		if p := recover(); p != nil {
			if !handed {
				r.marker.markChunk(buf, marks)
			}
			r.settled(r.h.panicked(p), len(chunk)-done)
		}
	}()
	t0 := time.Now()
	for i, j := range chunk {
		// Asked again right before the send: the permits may have taken
		// long enough for the cancel, and for the watcher to forget the
		// campaign (then this reads its flag: an unwatched campaign is
		// not taken for a live one).
		if canceled, err := r.h.life.canceled(r.ctx, j.c); canceled || err != nil {
			if canceled {
				r.leftByCancel(j)
			}
			r.settled(err, 1)
			done = i + 1
			continue
		}
		if !r.held() {
			// Left unsent and unmarked, with the rest of the chunk: their
			// new owner, if another consumer took the entries, sends them.
			r.settled(nil, len(chunk)-i)
			done = len(chunk)
			break
		}
		m, ok, t1 := r.send(l, j, t0)
		if ok {
			marks = append(marks, m)
		}
		done = i + 1
		if t1.IsZero() {
			t1 = time.Now()
		}
		took := t1.Sub(t0)
		t0 = t1
		l.observe(took)
		if took > slowSend && i < len(chunk)-1 {
			handed, done = true, len(chunk) // the rest are their workers' now
			r.marker.markChunk(buf, marks)
			for _, j := range chunk[i+1:] {
				r.dispatch(l, []job{j})
			}
			return
		}
	}
	handed = true
	r.marker.markChunk(buf, marks)
}

// held reports whether the round may start a send: the batch's lease
// runs (pipeline.Batch.Held), or a keep renewed it while the send waited.
// Asked after the send's permits, which may take long. A lease run out
// means Redis was away (or this process stalled) for most of ClaimIdle:
// another consumer may have claimed the entries and send their devices
// now. False once the batch is lost or the process stopping: the round
// starts nothing more, and ends as on Lost or on shutdown.
func (r *round) held() bool {
	if r.waitHeld(r.wait) {
		return true
	}
	if closed(r.stop) && !r.isLost() {
		r.stopped.Store(true)
	}
	return false
}

// leftByCancel records that j is not sent: its campaign was canceled.
func (r *round) leftByCancel(j job) {
	r.mu.Lock()
	r.results[j.i].canceled++
	r.mu.Unlock()
}

// send sends one job; now is the chunk's clock, and at the clock after the
// send (sendOne). A terminal outcome comes back to be marked (ok); a
// transient one is recorded for the caller to schedule and its slot freed.
func (r *round) send(l *appLane, j job, now time.Time) (_ markReq, ok bool, at time.Time) {
	res, mark, at, err := r.h.sendOne(r.ctx, l, r.limiter, j.c, j.d, now, r.emit)
	if res.Outcome == push.Sent && r.firstSent.Load() == 0 {
		r.firstSent.CompareAndSwap(0, time.Now().UnixNano())
	}
	if mark {
		// No clock after it: it made no request (expired, no sender).
		return markReq{p: r.p, c: j.c, d: j.d, outcome: res.Outcome, reason: res.Reason, unsent: at.IsZero(), r: r, i: j.i,
			forcedSent: r.forcedSentOf(j.i)}, true, at
	}
	if err == nil && res.Outcome == push.Retry {
		r.mu.Lock()
		u := &r.results[j.i]
		u.retry++
		u.retried = append(u.retried, j.d)
		u.retryAfter = max(u.retryAfter, res.RetryAfter)
		u.reason = res.Reason
		r.mu.Unlock()
	}
	r.settled(err, 1)
	return markReq{}, false, at
}
