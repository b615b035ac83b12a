package deliver

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
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
// provider some time after that, a time that varies by up to jitter
// (network, queues, a busy machine). So a request reaches the provider
// within
//
//	allowance = limitEarly + late + jitter
//
// of where its slot puts it, and a one-second window at the provider holds
// requests of at most 1 s + allowance of slots. The interval is (1 s +
// allowance) / tps, so those are fewer than tps. That is the burst the
// provider can see: what the allowance packs together, tps × allowance /
// (1 s + allowance) requests above the steady rate, which is tps × 1 s /
// (1 s + allowance).
//
// On a quiet machine late is limitLate and jitter limitJitter: the
// allowance is 31 ms, the burst 60 requests at 2000/s and the steady rate
// 97% of tps. On a busy one, late follows how late this process's permits
// were used in the last second or two, and jitter how much its sends'
// durations spread (limiter_noise.go), up to maxLate and maxJitter; the
// widest allowance any process asks for holds for all. The rate gives way
// to the noise instead of the provider seeing it.
//
// The allowance covers delays the limiter has seen. When the path or the
// provider stalls, what is sent meanwhile queues up and arrives together
// once it resumes, and only later do the durations tell: so a process
// stops using permits while sends wait and answers have stopped coming
// back for longer than the jitter (see stalled), and goes on when they
// come back.
//
// A process's first send to a provider opens the connection, and sends made
// meanwhile would reach the provider together once it is up: until one has
// been answered, the process lets one permit out at a time (warm), for up to
// coldWait. (A feeder whose sends are fast enough to go in chunks asks for
// several permits before it sends any: then the wait ends that way, once.)
//
// When the provider still refuses a send for the app's rate (a Throttled
// answer), its own limit is lower than tps: see done and refused.
type limiter struct {
	rdb   rueidis.Client
	keys  pipeline.Keys
	lane  pipeline.Lane // whose share of the cap this is: a bucket per lane
	tps   int
	chunk int
	ahead time.Duration // how far ahead of now slots may be granted
	log   zerolog.Logger

	buckets sync.Map // provider "\x00" app → *bucket
	late    prometheus.Counter

	// appTPS, if set, is an app's own cap (the apps file's tps, which a
	// reload may change); 0 or above tps: tps.
	appTPS func(app string) int

	// lender, if set, is the limiter whose unused permits this one takes
	// when its own run out: the bulk lane's, for the express lane. The
	// express share is a reservation, not a limit: an app sending only
	// messages had a fifth of its cap, and a chat room's pushes queued
	// behind a bulk lane with nothing to send. The lender's schedule
	// counts every permit it grants, whoever takes it, so the two lanes
	// together still keep under the cap.
	lender *limiter

	// caps, if set, is the cap in force per provider, app and lane
	// (pushpipe_deliver_rate_cap): --tps, an app's own, or less while the
	// provider refuses sends over its rate.
	caps *prometheus.GaugeVec
}

// off reports that app's sends are not capped: no cap of the process's
// (tps 0) and none of the app's.
func (l *limiter) off(app string) bool {
	return l == nil || l.tps <= 0 && (l.appTPS == nil || l.appTPS(app) <= 0)
}

// rate is app's cap, its chunk and how far ahead it is granted: the
// process's, or the app's own when that is lower.
func (l *limiter) rate(app string) (tps, chunk int, ahead time.Duration) {
	tps = l.tps
	if l.appTPS != nil {
		// (With no cap of the process's, --tps 0, an app's own still
		// holds.)
		if t := l.appTPS(app); t > 0 && (tps <= 0 || t < tps) {
			tps = t
		}
	}
	if tps == l.tps {
		return l.tps, l.chunk, l.ahead
	}
	chunk = min(max(tps/50, 1), 100)
	return tps, chunk, 3 * time.Duration(chunk) * (time.Second / time.Duration(max(tps, 1)))
}

// The allowance, see limiter.
const (
	limitEarly  = time.Millisecond
	limitLate   = 10 * time.Millisecond
	maxLate     = 100 * time.Millisecond
	limitJitter = 20 * time.Millisecond
	maxJitter   = 200 * time.Millisecond

	// stallCount overdue sends make a stall: one slow request alone is
	// not, and a handful bunched up at the provider fit the allowance.
	stallCount = 3
	stallPoll  = 2 * time.Millisecond // how often a stalled process looks again
	// stallMax: a send unanswered this long is forgotten, so that a
	// permit whose send never reports (a bug) cannot stop sending for good.
	stallMax = 5 * time.Second
)

// bucket is one process's view of one provider+app's schedule.
type bucket struct {
	key      string
	provider string
	app      string
	lend     string // the lender's key for the same provider and app; "" for none
	warm     atomic.Bool
	cold     chan struct{} // while cold, a token for the one send let out

	mu         sync.Mutex
	grants     []grant       // unused permits, by slot
	notBefore  time.Time     // nothing was granted: ask again then
	fetching   chan struct{} // closed when the fetch in progress ends
	holdUntil  time.Time     // refusals before then are already reported
	lateness   lateness
	durations  durations
	noise      noise // from lateness and durations, refreshed every noiseEvery
	out        outstanding
	lastAnswer time.Time
}

// newLimiter makes the limiter of tps; late counts the permits dropped for
// being late.
func newLimiter(rdb rueidis.Client, keys pipeline.Keys, lane pipeline.Lane, tps int, log zerolog.Logger, late prometheus.Counter) *limiter {
	// About 50 chunks a second over all processes: a process never holds
	// much of the schedule another could use, and a Redis call buys 20 ms
	// of sends.
	chunk := min(max(tps/50, 1), 100)
	every := time.Second / time.Duration(max(tps, 1))
	return &limiter{rdb: rdb, keys: keys, lane: lane, tps: tps, chunk: chunk, ahead: 3 * time.Duration(chunk) * every, log: log, late: late}
}

// chunkOf is how many permits b asks for at once.
func (l *limiter) chunkOf(b *bucket) int {
	if l.appTPS == nil {
		return l.chunk
	}
	_, chunk, _ := l.rate(b.app)
	return chunk
}

func (l *limiter) bucket(provider, app string) *bucket {
	id := provider + "\x00" + app
	if b, ok := l.buckets.Load(id); ok {
		return b.(*bucket)
	}
	// The bulk lane keeps the key it always had; the express lane's share is
	// a window of its own.
	nb := &bucket{key: l.keys.RateLimit(l.lane.Stream(provider), app), provider: provider, app: app, cold: make(chan struct{}, 1)}
	if l.lender != nil {
		nb.lend = l.keys.RateLimit(l.lender.lane.Stream(provider), app)
	}
	nb.cold <- struct{}{}
	b, _ := l.buckets.LoadOrStore(id, nb)
	return b.(*bucket)
}

// wait blocks until one send to provider for app may start. Call it right
// before the send, and done with the send's result.
func (l *limiter) wait(ctx context.Context, provider, app string) error {
	if l.off(app) {
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

// permit takes the next permit and waits for its slot.
func (l *limiter) permit(ctx context.Context, b *bucket) error {
	for {
		b.mu.Lock()
		now := time.Now()
		l.late.Add(float64(b.dropLate(now)))
		n := b.noiseAt(now)
		left := b.left()
		switch {
		case b.stalled(now, n):
			b.mu.Unlock()
			if err := sleep(ctx, stallPoll); err != nil {
				return err
			}
		case left <= l.chunkOf(b) && b.fetching == nil && !now.Before(b.notBefore):
			// Running low: fetch the next chunk while what is left (if
			// anything) covers the Redis call.
			ch := make(chan struct{})
			b.fetching = ch
			b.mu.Unlock()
			if err := l.fetch(ctx, b, ch, n.late, limitEarly+n.late+n.jitter); err != nil {
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
			l.late.Inc()
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
