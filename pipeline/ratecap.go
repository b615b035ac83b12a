package pipeline

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// RateCap caps events per second across every process that shares its key:
// no sliding window of one second plus RateCapSlack (Redis's clock) holds
// more than Rate events, so no one-second window at the receiving end does
// either, unless some events take RateCapSlack longer than others to get
// there (a POST's connection, a loaded machine).
// A caller takes n events at once (a webhook POST) and, if they do not fit,
// waits until enough of the last second has passed. x/time/rate is
// per-process; this is the same promise for a cluster, at one script call
// per take (a batch of events), not per event.
//
// It is a sliding log: a sorted set of the takes of the last second, scored
// by their time. deliver's limiter (GCRA with an adaptive cap) is built for
// one permit per provider request; a batch of events needs a window exact
// for n at a time, which this is.
type RateCap struct {
	rdb  rueidis.Client
	key  string
	rate int
}

// NewRateCap returns a cap of rate events/s on key (Keys.RateCap); rate ≤ 0
// caps nothing.
func NewRateCap(rdb rueidis.Client, key string, rate int) *RateCap {
	return &RateCap{rdb: rdb, key: key, rate: rate}
}

// RateCapSlack widens the cap's window beyond a second: the room left for
// events taken at one time to arrive later than others. It costs the cap
// 1/6 of its rate when it is saturated.
const RateCapSlack = 200 * time.Millisecond

// capScript takes ARGV[1] events of the window KEYS[1] if they fit under
// ARGV[2] in the last ARGV[4] µs: it returns 0, or the µs to wait before asking
// again. Members are "time:n:nonce" (ARGV[3], the caller's random nonce);
// the set expires when idle.
var capScript = rueidis.NewLuaScript(`
local want, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now - window))
local takes = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local used = 0
for i = 1, #takes, 2 do used = used + tonumber(string.match(takes[i], ':(%d+):')) end
if used + want <= cap then
  redis.call('ZADD', KEYS[1], string.format('%d', now), string.format('%d:%d:%s', now, want, ARGV[3]))
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return 0
end
-- Wait until the oldest takes leave the window and make room.
for i = 1, #takes, 2 do
  used = used - tonumber(string.match(takes[i], ':(%d+):'))
  if used + want <= cap then return tonumber(takes[i + 1]) + window - now + 1 end
end
return window
`)

// Take waits until n events fit under the cap and takes them. n above the
// rate can never fit: callers cut their batches to Rate (Max).
func (c *RateCap) Take(ctx context.Context, n int) error {
	if c.rate <= 0 || n <= 0 {
		return nil
	}
	if n > c.rate {
		return fmt.Errorf("take %d events: more than the cap of %d/s", n, c.rate)
	}
	for {
		wait, err := capScript.Exec(ctx, c.rdb, []string{c.key}, []string{strconv.Itoa(n), strconv.Itoa(c.rate), strconv.FormatUint(rand.Uint64(), 36),
			strconv.FormatInt((time.Second + RateCapSlack).Microseconds(), 10)}).AsInt64()
		if err != nil {
			return fmt.Errorf("rate cap %s: %w", c.key, err)
		}
		if wait == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(wait) * time.Microsecond):
		}
	}
}

// Max is the most events one Take may ask for (0: no cap).
func (c *RateCap) Max() int { return max(c.rate, 0) }
