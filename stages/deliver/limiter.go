package deliver

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// limiter is the cluster-wide send-rate cap: no more than tps sends per
// provider and app reach the provider in any one-second window, whatever
// the window's phase, summed over every deliver process.
//
// It is a GCRA (generic cell rate algorithm) kept in Redis (see
// limiter_scripts.go): the permits of a provider+app are slots on one
// schedule, an interval apart, and a process takes a chunk of them at once
// (the schedule advances by chunk × interval), so a send costs a Redis call
// only once per chunk. The process then uses each permit at its slot, not
// when the chunk arrives, so a chunk is never a burst and the slots of all
// processes interleave on one timeline.
//
// A permit is used from limitEarly before its slot to late after it (a
// permit found later than that is dropped), and its request reaches the
// provider some time after that, a time that varies by up to late +
// limitJitter (network, queues, a busy machine: assumed as noisy as the
// wake-ups). So a request reaches the provider within
//
//	allowance = limitEarly + 2 × late + limitJitter
//
// of where its slot puts it, and a one-second window at the provider holds
// requests of at most 1 s + allowance of slots. The interval is (1 s +
// allowance) / tps, so those are fewer than tps. That is the burst the
// provider can see: what the allowance packs together, tps × allowance /
// (1 s + allowance) requests above the steady rate, which is tps × 1 s /
// (1 s + allowance). On a quiet machine late is limitLate: the allowance is
// 31 ms, the burst 60 requests at 2000/s and the steady rate 97% of tps. On
// a busy one, late follows how late this process's permits were used in
// the last second or two (up to maxLate), and the widest allowance any
// process asks for holds for all: the rate gives way to the noise instead
// of the provider seeing it.
//
// A process's first send to a provider opens the connection, and sends made
// meanwhile would reach the provider together once it is up: until one has
// been answered, the process lets one permit out at a time (warm), for up to
// coldWait. (A feeder whose sends are fast enough to go in chunks asks for
// several permits before it sends any: then the wait ends that way, once.)
//
// When the provider still refuses a send for its rate (429), its own limit
// is lower than tps: see done.
type limiter struct {
	rdb   rueidis.Client
	keys  pipeline.Keys
	tps   int
	chunk int
	ahead time.Duration // how far ahead of now slots may be granted
	log   zerolog.Logger

	buckets sync.Map     // provider "\x00" app → *bucket
	late    atomic.Int64 // permits dropped for being late
}

// The allowance, see limiter.
const (
	limitEarly  = time.Millisecond
	limitLate   = 10 * time.Millisecond
	maxLate     = 100 * time.Millisecond
	limitJitter = 10 * time.Millisecond
)

func allowanceFor(late time.Duration) time.Duration { return limitEarly + 2*late + limitJitter }

// lateFor inverts allowanceFor: how late a permit granted for allowance a
// may be used.
func lateFor(a time.Duration) time.Duration {
	return max((a-limitEarly-limitJitter)/2, limitLate)
}

// bucket is one process's view of one provider+app's schedule.
type bucket struct {
	key  string
	warm atomic.Bool
	cold chan struct{} // while cold, a token for the one send let out

	mu        sync.Mutex
	grants    []grant       // unused permits, by slot
	notBefore time.Time     // nothing was granted: ask again then
	fetching  chan struct{} // closed when the fetch in progress ends
	holdUntil time.Time     // refusals before then are already reported
	lateness  lateness
}

// grant is a chunk of permits: n slots, every apart, from next on (this
// process's clock), each to be used no later than late after its slot.
type grant struct {
	next        time.Time
	n           int
	every, late time.Duration
}

func newLimiter(rdb rueidis.Client, keys pipeline.Keys, tps int, log zerolog.Logger) *limiter {
	// About 50 chunks a second over all processes: a process never holds
	// much of the schedule another could use, and a Redis call buys 20 ms
	// of sends.
	chunk := min(max(tps/50, 1), 100)
	every := time.Second / time.Duration(max(tps, 1))
	return &limiter{rdb: rdb, keys: keys, tps: tps, chunk: chunk, ahead: 3 * time.Duration(chunk) * every, log: log}
}

func (l *limiter) bucket(provider, app string) *bucket {
	id := provider + "\x00" + app
	if b, ok := l.buckets.Load(id); ok {
		return b.(*bucket)
	}
	nb := &bucket{key: l.keys.RateLimit(provider, app), cold: make(chan struct{}, 1)}
	nb.cold <- struct{}{}
	b, _ := l.buckets.LoadOrStore(id, nb)
	return b.(*bucket)
}

// wait blocks until one send to provider for app may start. Call it right
// before the send, and done with the send's result.
func (l *limiter) wait(ctx context.Context, provider, app string) error {
	if l == nil || l.tps <= 0 {
		return nil
	}
	b := l.bucket(provider, app)
	holding, err := b.letOut(ctx)
	if err != nil {
		return err
	}
	if err := l.permit(ctx, b); err != nil {
		if holding {
			b.release()
		}
		return err
	}
	return nil
}

// done takes the result of a send wait let out. The first answer warms the
// bucket up; a refusal for the provider's rate backs the cap off.
func (l *limiter) done(ctx context.Context, provider, app string, res push.Result) {
	if l == nil || l.tps <= 0 {
		return
	}
	b := l.bucket(provider, app)
	if !b.warm.Load() {
		if res.Status != 0 { // an answer: the connection is up
			b.warm.Store(true)
		}
		b.release()
	}
	if res.Status == http.StatusTooManyRequests {
		l.refused(ctx, b, res.RetryAfter)
	}
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

// permit takes the next permit and waits for its slot.
func (l *limiter) permit(ctx context.Context, b *bucket) error {
	for {
		b.mu.Lock()
		now := time.Now()
		l.late.Add(int64(b.dropLate(now)))
		left := b.left()
		switch {
		case left <= l.chunk && b.fetching == nil && !now.Before(b.notBefore):
			// Running low: fetch the next chunk while what is left (if
			// anything) covers the Redis call.
			ch := make(chan struct{})
			b.fetching = ch
			late := min(max(b.lateness.recent(now), limitLate), maxLate)
			b.mu.Unlock()
			if err := l.fetch(ctx, b, ch, allowanceFor(late)); err != nil {
				return err
			}
		case left > 0:
			slot, lateOK := b.take()
			b.mu.Unlock()
			if err := sleep(ctx, slot.Sub(now)-limitEarly); err != nil {
				return err
			}
			now = time.Now()
			late := now.Sub(slot)
			b.mu.Lock()
			b.lateness.add(now, late)
			b.mu.Unlock()
			if late <= lateOK {
				return nil
			}
			// Woke up too late (a busy machine): sent now, it could bunch up
			// with later ones at the provider. The next fetch leaves more
			// room for lateness.
			l.late.Add(1)
		case b.fetching != nil:
			ch := b.fetching
			b.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return ctx.Err()
			}
		default:
			d := b.notBefore.Sub(now)
			b.mu.Unlock()
			if err := sleep(ctx, d); err != nil {
				return err
			}
		}
	}
}

// dropLate drops the permits that nobody took until more than their late
// past their slots, and returns how many.
func (b *bucket) dropLate(now time.Time) int {
	dropped := 0
	for len(b.grants) > 0 {
		g := &b.grants[0]
		if over := now.Sub(g.next) - g.late; over > 0 {
			skip := min(int(over/g.every)+1, g.n)
			g.n -= skip
			g.next = g.next.Add(time.Duration(skip) * g.every)
			dropped += skip
		}
		if g.n > 0 {
			return dropped
		}
		b.grants = b.grants[1:]
	}
	return dropped
}

func (b *bucket) left() int {
	n := 0
	for _, g := range b.grants {
		n += g.n
	}
	return n
}

// take hands out the earliest permit's slot and how late it may be used;
// there must be one.
func (b *bucket) take() (slot time.Time, late time.Duration) {
	g := &b.grants[0]
	slot, late = g.next, g.late
	g.next = g.next.Add(g.every)
	if g.n--; g.n == 0 {
		b.grants = b.grants[1:]
	}
	return slot, late
}

// fetch asks Redis for a chunk of permits spaced for allowance (or wider,
// if another process asked for more) and ends the fetch ch stands for.
// Slots come back relative to Redis's now, which lies between the start and
// the end of the call: they are placed from the end, so that none is early
// (the call's duration adds to lateness).
func (l *limiter) fetch(ctx context.Context, b *bucket, ch chan struct{}, allowance time.Duration) error {
	res, err := grantScript.Exec(ctx, l.rdb, []string{b.key}, []string{
		strconv.Itoa(l.tps), strconv.Itoa(l.chunk),
		strconv.FormatInt(l.ahead.Microseconds(), 10), strconv.FormatInt(allowance.Microseconds(), 10),
		recoverKnee, recoverFast, recoverSlow,
	}).AsIntSlice()
	end := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fetching = nil
	close(ch)
	switch {
	case err != nil:
		return fmt.Errorf("rate limit %s: %w", b.key, err)
	case len(res) != 4:
		return fmt.Errorf("rate limit %s: unexpected reply %v", b.key, res)
	case res[0] == 0:
		b.notBefore = end.Add(time.Duration(res[1]) * time.Microsecond)
		return nil
	}
	b.grants = append(b.grants, grant{
		next: end.Add(time.Duration(res[1]) * time.Microsecond), n: int(res[0]),
		every: time.Duration(res[2]), late: lateFor(time.Duration(res[3]) * time.Microsecond),
	})
	return nil
}

// lateness keeps the most a permit was used after its slot in this second
// and the one before.
type lateness struct {
	sec int64
	max [2]time.Duration
}

func (x *lateness) add(now time.Time, d time.Duration) {
	switch sec := now.Unix(); {
	case sec == x.sec:
	case sec == x.sec+1:
		x.sec, x.max = sec, [2]time.Duration{0, x.max[0]}
	default:
		x.sec, x.max = sec, [2]time.Duration{}
	}
	x.max[0] = max(x.max[0], d)
}

func (x *lateness) recent(now time.Time) time.Duration {
	switch now.Unix() {
	case x.sec:
		return max(x.max[0], x.max[1])
	case x.sec + 1:
		return x.max[0]
	}
	return 0
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
