package deliver

import (
	"context"
	"time"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// What the limiter learns from the sends it lets out (see limiter): when
// they begin and end, whether the provider answered at all, and whether it
// refused them for its rate.

// begin marks the start of a send to provider for app that wait let out:
// pass what it returns to done with the send's result.
func (l *limiter) begin(provider, app string) time.Time {
	if l.off(app) {
		return time.Time{}
	}
	b := l.bucket(provider, app)
	now := time.Now()
	b.mu.Lock()
	b.out.add(now)
	b.mu.Unlock()
	return now
}

// done takes the result of a send begun at start. The first answer warms
// the bucket up; the others tell how the sends' durations spread; a refusal
// for the app's rate (res.Throttled) backs the cap off. It returns the
// clock it read at the answer (zero when the limiter is off), which times
// the request too.
func (l *limiter) done(ctx context.Context, start time.Time, provider, app string, res push.Result) time.Time {
	if l.off(app) {
		return time.Time{}
	}
	b := l.bucket(provider, app)
	now := time.Now()
	b.mu.Lock()
	b.out.answered()
	b.lastAnswer = now
	if b.warm.Load() && !start.IsZero() {
		// (The send that set up the connection took longer than any other
		// will: it says nothing of the noise.)
		b.durations.add(now, now.Sub(start))
	}
	b.mu.Unlock()
	if !b.warm.Load() {
		if res.Status != 0 { // an answer: the connection is up
			b.warm.Store(true)
		}
		b.release()
	}
	if res.Throttled {
		l.refused(ctx, b, res.RetryAfter)
	}
	return now
}

// coldWait bounds the wait for a first answer: longer than a TLS handshake
// with a provider across the world.
const coldWait = time.Second

// letOut waits, while the bucket is cold, for the token of the one send let
// out; holding says this send has it (done gives it back).
func (b *bucket) letOut(ctx context.Context) (holding bool, err error) {
	if b.warm.Load() {
		return false, nil
	}
	t := time.NewTimer(coldWait)
	defer t.Stop()
	select {
	case <-b.cold:
	case <-t.C:
		b.warm.Store(true)
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
	if b.warm.Load() { // warmed up while this one waited
		b.release()
		return false, nil
	}
	return true, nil
}

func (b *bucket) release() {
	select {
	case b.cold <- struct{}{}:
	default:
	}
}

// stalled reports whether the provider (or the way to it) stopped
// answering while stallCount sends wait for it: no answer for longer than
// the jitter (so that what is sent meanwhile, which will arrive together,
// fits the allowance), or answers that come back while the oldest sends
// are overdue (older than a typical send by more than the jitter; than
// maxJitter before any send was timed). It forgets sends unanswered for
// stallMax. b.mu is held.
func (b *bucket) stalled(now time.Time, n noise) bool {
	for o := b.out.oldest(0); !o.IsZero() && now.Sub(o) > stallMax; o = b.out.oldest(0) {
		b.out.answered()
	}
	o := b.out.oldest(stallCount - 1) // FIFO: the older ones are older still
	if o.IsZero() {
		return false
	}
	waiting := now.Sub(o)
	if waiting > n.jitter && now.Sub(b.lastAnswer) > n.jitter {
		return true
	}
	overdue := maxJitter
	if n.typicalKnown {
		overdue = n.typical + n.jitter
	}
	return waiting > overdue
}
