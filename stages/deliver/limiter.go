package deliver

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// limitScript grants up to ARGV[2] send permits in the current one-second
// window of Redis's clock, never more than ARGV[1] per window in total over
// every caller. The last ARGV[3] ms of a window grant nothing: a request
// started then could reach the provider in its next second. It returns
// {granted, ms left in the window}.
var limitScript = rueidis.NewLuaScript(`
local tps, want, margin = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local sec, us = tonumber(t[1]), tonumber(t[2])
local left = math.floor((1000000 - us) / 1000)
if left <= margin then return {0, left} end
local cur = redis.call('HMGET', KEYS[1], 's', 'n')
local n = 0
if tonumber(cur[1]) == sec then n = tonumber(cur[2]) end
local grant = math.min(want, tps - n)
if grant <= 0 then return {0, left} end
redis.call('HSET', KEYS[1], 's', sec, 'n', n + grant)
redis.call('PEXPIRE', KEYS[1], 10000)
return {grant, left}
`)

// limiter is the cluster-wide send-rate cap: at most tps sends per provider
// and app in every one-second window, summed over every deliver process.
// Permits are fetched from Redis in chunks, so a send costs a Redis call only
// once per chunk.
//
// A permit of a window is only used while the window has more than a margin
// left: the fixed margin, or the longest recent send if that is longer (up
// to maxMargin). A send slower than that could reach the provider in its
// next second, where other permits are already granted; on an overloaded
// machine sends get slow, and the cutoff moves earlier with them.
type limiter struct {
	rdb    rueidis.Client
	keys   pipeline.Keys
	tps    int
	chunk  int
	margin time.Duration

	mu      sync.Mutex
	buckets map[string]*bucket

	latMu  sync.Mutex
	latSec int64            // the second lat[0] is about
	lat    [2]time.Duration // longest send this second, and the one before
}

// maxMargin bounds the adaptive margin: with sends slower than this, half
// of each second still sends.
const maxMargin = 500 * time.Millisecond

// bucket holds one process's unused permits of one provider+app.
type bucket struct {
	key       string
	mu        sync.Mutex
	n         int           // permits left
	end       time.Time     // end of their window (no later than Redis's)
	notBefore time.Time     // the window is used up: ask again then
	fetching  chan struct{} // closed when the fetch in progress ends
}

func newLimiter(rdb rueidis.Client, keys pipeline.Keys, tps int, margin time.Duration) *limiter {
	// About 50 fetches per window over all processes: small enough that a
	// process never sits on much of a window another one could use.
	chunk := min(max(tps/50, 1), 100)
	return &limiter{rdb: rdb, keys: keys, tps: tps, chunk: chunk, margin: margin, buckets: map[string]*bucket{}}
}

func (l *limiter) bucket(provider, app string) *bucket {
	id := provider + "\x00" + app
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[id]
	if b == nil {
		b = &bucket{key: l.keys.RateLimit(provider, app)}
		l.buckets[id] = b
	}
	return b
}

// observe records how long a send took, from its permit to its answer.
func (l *limiter) observe(d time.Duration) {
	if l == nil || l.tps <= 0 {
		return
	}
	sec := time.Now().Unix()
	l.latMu.Lock()
	switch {
	case sec == l.latSec:
	case sec == l.latSec+1:
		l.lat = [2]time.Duration{0, l.lat[0]}
	default:
		l.lat = [2]time.Duration{}
	}
	l.latSec = sec
	l.lat[0] = max(l.lat[0], d)
	l.latMu.Unlock()
}

// cutoff is how long before its window's end a permit stops being usable.
func (l *limiter) cutoff() time.Duration {
	l.latMu.Lock()
	defer l.latMu.Unlock()
	recent := l.lat[0]
	if time.Now().Unix() == l.latSec {
		recent = max(recent, l.lat[1])
	}
	return max(l.margin, min(recent, maxMargin))
}

// wait blocks until one send to provider for app is allowed. Call it right
// before the send, and observe the send's duration afterwards.
func (l *limiter) wait(ctx context.Context, provider, app string) error {
	if l == nil || l.tps <= 0 {
		return nil
	}
	b := l.bucket(provider, app)
	for {
		cutoff := l.cutoff()
		b.mu.Lock()
		now := time.Now()
		switch {
		case b.n > 0 && now.Add(cutoff).Before(b.end):
			b.n--
			b.mu.Unlock()
			return nil
		case b.n > 0:
			// Too late in the window for what is left: drop it.
			b.n, b.notBefore = 0, b.end.Add(time.Millisecond)
			b.mu.Unlock()
			continue
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
		ch := make(chan struct{})
		b.fetching = ch
		b.mu.Unlock()

		granted, end, err := l.fetch(ctx, b.key, cutoff)
		b.mu.Lock()
		b.fetching = nil
		close(ch)
		if err == nil {
			b.n, b.end = granted, end
			if granted == 0 {
				// +1ms: land inside the next window, not on its edge.
				b.notBefore = end.Add(time.Millisecond)
			}
		}
		b.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// fetch asks Redis for a chunk of permits of the current window; end is
// when the window ends, measured from before the call so never later than
// Redis's own.
func (l *limiter) fetch(ctx context.Context, key string, cutoff time.Duration) (granted int, end time.Time, err error) {
	start := time.Now()
	res, err := limitScript.Exec(ctx, l.rdb, []string{key}, []string{
		strconv.Itoa(l.tps), strconv.Itoa(l.chunk), strconv.FormatInt(cutoff.Milliseconds(), 10),
	}).AsIntSlice()
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("rate limit %s: %w", key, err)
	}
	if len(res) != 2 {
		return 0, time.Time{}, fmt.Errorf("rate limit %s: unexpected reply %v", key, res)
	}
	return int(res[0]), start.Add(time.Duration(res[1]) * time.Millisecond), nil
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
