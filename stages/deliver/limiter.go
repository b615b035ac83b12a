package deliver

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"golang.org/x/time/rate"

	"github.com/pushpipe/pushpipe/pipeline"
)

// limitScript grants up to ARGV[2] send permits in the current one-second
// window of Redis's clock, never more than ARGV[1] per window in total over
// every caller.
//
// A request reaches the provider a little after its permit, so one started
// late in a window may be counted by the provider in the next one. Hence:
// the last ARGV[3] ms (the margin) grant nothing, and permits granted in the
// ARGV[4] ms before that (the tail) are charged to the next window as well,
// so that whichever second the provider counts them in, they fit its cap.
//
// It returns {granted, ms left in the window, 1 if they were tail permits}.
var limitScript = rueidis.NewLuaScript(`
local tps, want, margin, tail = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local sec, us = tonumber(t[1]), tonumber(t[2])
local left = math.floor((1000000 - us) / 1000)
if left <= margin then return {0, left, 0} end
local cur, nxt = tostring(sec), tostring(sec + 1)
local counts = redis.call('HMGET', KEYS[1], cur, nxt)
local grant = math.min(want, tps - (tonumber(counts[1]) or 0))
local inTail = left <= margin + tail
if inTail then grant = math.min(grant, tps - (tonumber(counts[2]) or 0)) end
if grant <= 0 then return {0, left, 0} end
redis.call('HINCRBY', KEYS[1], cur, grant)
if inTail then redis.call('HINCRBY', KEYS[1], nxt, grant) end
redis.call('HDEL', KEYS[1], tostring(sec - 1))
redis.call('PEXPIRE', KEYS[1], 10000)
if inTail then return {grant, left, 1} end
return {grant, left, 0}
`)

// limiter is the cluster-wide send-rate cap: at most tps sends per provider
// and app in every one-second window, summed over every deliver process.
// Permits are fetched from Redis in chunks, so a send costs a Redis call only
// once per chunk, and each process paces its own sends over the second.
//
// The tail of a window (see limitScript) is at least minTail, or as long as
// the slowest recent send took, up to maxTail: a send that slow may reach the
// provider that late. On an overloaded machine sends get slow and the tail
// grows with them.
type limiter struct {
	rdb    rueidis.Client
	keys   pipeline.Keys
	tps    int
	chunk  int
	margin time.Duration

	mu      sync.Mutex
	buckets map[string]*bucket

	latMu    sync.Mutex
	latSec   int64            // the second lat[0] is about
	lat      [2]time.Duration // slowest send this second, and the one before
	inFlight map[uint64]time.Time
	nextID   uint64
}

// Bounds of the tail.
const (
	minTail = 200 * time.Millisecond
	maxTail = 500 * time.Millisecond
)

// bucket holds one process's unused permits of one provider+app.
type bucket struct {
	key string
	// pace spreads this process's sends over the second instead of
	// starting a window's worth at once: a burst of hundreds of requests
	// queues up at the provider and makes every send of it slow.
	pace *rate.Limiter

	mu        sync.Mutex
	n         int           // permits left
	until     time.Time     // they may be used until then
	notBefore time.Time     // the window is used up: ask again then
	fetching  chan struct{} // closed when the fetch in progress ends
}

func newLimiter(rdb rueidis.Client, keys pipeline.Keys, tps int, margin time.Duration) *limiter {
	// About 50 fetches per window over all processes: small enough that a
	// process never sits on much of a window another one could use.
	chunk := min(max(tps/50, 1), 100)
	return &limiter{rdb: rdb, keys: keys, tps: tps, chunk: chunk, margin: margin,
		buckets: map[string]*bucket{}, inFlight: map[uint64]time.Time{}}
}

func (l *limiter) bucket(provider, app string) *bucket {
	id := provider + "\x00" + app
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[id]
	if b == nil {
		// Fast enough to use a whole window before its margin.
		r := float64(l.tps) / (1 - l.margin.Seconds())
		b = &bucket{key: l.keys.RateLimit(provider, app), pace: rate.NewLimiter(rate.Limit(r), max(l.chunk/4, 1))}
		l.buckets[id] = b
	}
	return b
}

// begin records that a send started (right after its permit); done must be
// called with its id when the answer is in.
func (l *limiter) begin() uint64 {
	if l == nil || l.tps <= 0 {
		return 0
	}
	l.latMu.Lock()
	defer l.latMu.Unlock()
	l.nextID++
	l.inFlight[l.nextID] = time.Now()
	return l.nextID
}

// done records the end of a send begun with id.
func (l *limiter) done(id uint64) {
	if l == nil || l.tps <= 0 {
		return
	}
	now := time.Now()
	sec := now.Unix()
	l.latMu.Lock()
	defer l.latMu.Unlock()
	start, ok := l.inFlight[id]
	if !ok {
		return
	}
	delete(l.inFlight, id)
	switch {
	case sec == l.latSec:
	case sec == l.latSec+1:
		l.lat = [2]time.Duration{0, l.lat[0]}
	default:
		l.lat = [2]time.Duration{}
	}
	l.latSec = sec
	l.lat[0] = max(l.lat[0], now.Sub(start))
}

// tail is the current length of a window's double-charged tail: as long as
// the slowest send of the last second or two took, or the oldest one still
// in flight has been going (a provider that stalls right now shows there
// first), within [minTail, maxTail].
func (l *limiter) tail() time.Duration {
	now := time.Now()
	l.latMu.Lock()
	defer l.latMu.Unlock()
	recent := time.Duration(0)
	if sec := now.Unix(); sec == l.latSec {
		recent = max(l.lat[0], l.lat[1])
	} else if sec == l.latSec+1 {
		recent = l.lat[0]
	}
	for _, start := range l.inFlight {
		recent = max(recent, now.Sub(start))
	}
	return max(minTail, min(recent, maxTail))
}

// wait blocks until one send to provider for app is allowed. Call it right
// before the send, and begin and done around the send.
func (l *limiter) wait(ctx context.Context, provider, app string) error {
	if l == nil || l.tps <= 0 {
		return nil
	}
	b := l.bucket(provider, app)
	if err := b.pace.Wait(ctx); err != nil {
		return err
	}
	for {
		b.mu.Lock()
		now := time.Now()
		switch {
		case b.n > 0 && now.Before(b.until):
			b.n--
			b.mu.Unlock()
			return nil
		case b.fetching != nil:
			ch := b.fetching
			b.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		case now.Before(b.notBefore):
			d := b.notBefore.Sub(now)
			b.mu.Unlock()
			if err := sleep(ctx, d); err != nil {
				return err
			}
			continue
		}
		// Out of permits, or the ones left may not be used this late.
		ch := make(chan struct{})
		b.n, b.fetching = 0, ch
		b.mu.Unlock()

		granted, until, notBefore, err := l.fetch(ctx, b.key, l.tail())
		b.mu.Lock()
		b.fetching = nil
		close(ch)
		if err == nil {
			b.n, b.until, b.notBefore = granted, until, notBefore
		}
		b.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// fetch asks Redis for a chunk of permits. Times are measured from before
// the call, so they are never later than Redis's own. Permits granted before
// the tail may only be used until the tail starts (after that a send must be
// charged to the next window too); tail permits until the margin.
func (l *limiter) fetch(ctx context.Context, key string, tail time.Duration) (granted int, until, notBefore time.Time, err error) {
	start := time.Now()
	res, err := limitScript.Exec(ctx, l.rdb, []string{key}, []string{
		strconv.Itoa(l.tps), strconv.Itoa(l.chunk),
		strconv.FormatInt(l.margin.Milliseconds(), 10), strconv.FormatInt(tail.Milliseconds(), 10),
	}).AsIntSlice()
	if err != nil {
		return 0, time.Time{}, time.Time{}, fmt.Errorf("rate limit %s: %w", key, err)
	}
	if len(res) != 3 {
		return 0, time.Time{}, time.Time{}, fmt.Errorf("rate limit %s: unexpected reply %v", key, res)
	}
	end := start.Add(time.Duration(res[1]) * time.Millisecond)
	if res[0] == 0 {
		// +1ms: land inside the next window, not on its edge.
		return 0, time.Time{}, end.Add(time.Millisecond), nil
	}
	until = end.Add(-l.margin)
	if res[2] == 0 {
		until = until.Add(-tail)
	}
	return int(res[0]), until, time.Time{}, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
