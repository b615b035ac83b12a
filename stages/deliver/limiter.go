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
// {granted, ms}: with permits, how long they may still be used; without,
// how long until the next window.
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
return {grant, left - margin}
`)

// limiter is the cluster-wide send-rate cap: at most tps sends per provider
// and app in every one-second window, summed over every deliver process.
// Permits are fetched from Redis in chunks, so a send costs a Redis call only
// once per chunk.
type limiter struct {
	rdb    rueidis.Client
	keys   pipeline.Keys
	tps    int
	chunk  int
	margin time.Duration

	mu      sync.Mutex
	buckets map[string]*bucket
}

// bucket holds one process's unused permits of one provider+app.
type bucket struct {
	key       string
	mu        sync.Mutex
	n         int           // permits left
	until     time.Time     // they expire then (end of their window less the margin)
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

// wait blocks until one send to provider for app is allowed. Call it right
// before the send: a permit is only valid until shortly before its window
// ends.
func (l *limiter) wait(ctx context.Context, provider, app string) error {
	if l == nil || l.tps <= 0 {
		return nil
	}
	b := l.bucket(provider, app)
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
		ch := make(chan struct{})
		b.fetching = ch
		b.n = 0
		b.mu.Unlock()

		granted, until, notBefore, err := l.fetch(ctx, b.key)
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

// fetch asks Redis for a chunk of permits.
func (l *limiter) fetch(ctx context.Context, key string) (granted int, until, notBefore time.Time, err error) {
	start := time.Now()
	res, err := limitScript.Exec(ctx, l.rdb, []string{key}, []string{
		strconv.Itoa(l.tps), strconv.Itoa(l.chunk), strconv.FormatInt(l.margin.Milliseconds(), 10),
	}).AsIntSlice()
	if err != nil {
		return 0, time.Time{}, time.Time{}, fmt.Errorf("rate limit %s: %w", key, err)
	}
	if len(res) != 2 {
		return 0, time.Time{}, time.Time{}, fmt.Errorf("rate limit %s: unexpected reply %v", key, res)
	}
	d := time.Duration(res[1]) * time.Millisecond
	if res[0] == 0 {
		// +1ms: land inside the next window, not on its edge.
		return 0, time.Time{}, start.Add(d + time.Millisecond), nil
	}
	// Measured from before the call: the window's end is no later than that.
	return int(res[0]), start.Add(d), time.Time{}, nil
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
