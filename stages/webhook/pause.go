package webhook

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// A receiver's pause is its group's, not a process's: a 429, a 503 or a
// Retry-After asks everyone to wait, and with three replicas the two that
// got no such answer POSTed on into the receiver, as did a process that
// claimed the batch after --claim-idle or was restarted into the pause.
// So the process answered extends the group's pause in Redis
// (Keys.WebhookPause, a key whose TTL is what is left of it: Redis's clock
// decides when it ends, whatever the hosts' clocks say), and every process
// reads it before each POST once its own pause (Handler.quiet, the fast
// path, no round trip) is over. One PTTL per POST: a POST is heavier.
// Redis away, a process honours only its own pauses (sharedPause's 0), and
// says so once: the pause key never holds delivery back by itself.

// extendScript sets the pause KEYS[1] to ARGV[1] ms from now, unless what
// is left of it is longer already; it returns what is left after. A key
// without a TTL (-1: set by hand) is replaced: it would pause forever.
var extendScript = rueidis.NewLuaScript(`
local want = tonumber(ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if left >= want then return left end
redis.call('SET', KEYS[1], ARGV[1], 'PX', want)
return want
`)

// pauseTimeout bounds one call on the pause key: far above its time on a
// Redis that answers (rueidis retries a read for as long as its context
// lasts, so without it a read to a Redis that is down never returned).
const pauseTimeout = 2 * time.Second

// pauseRetry is how long after a failed call on the pause key the next
// POST skips it: Redis away, each POST waited pauseTimeout for nothing.
const pauseRetry = time.Second

// sharePause extends the group's pause to d from now, unless it is longer
// already. Whole milliseconds, rounded up, and one more: Redis keeps the
// expiry in whole ms of its clock, which may be up to 1 ms behind.
func (h *Handler) sharePause(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), pauseTimeout)
	defer cancel()
	ms := (d+time.Millisecond-1)/time.Millisecond + 1
	err := extendScript.Exec(ctx, h.cfg.Redis, []string{h.cfg.Keys.WebhookPause(h.cfg.Group)}, []string{strconv.FormatInt(int64(ms), 10)}).Error()
	h.pauseAnswered(err)
}

// sharedPause is what is left of the group's pause: 0 with none, or when
// Redis did not answer (or did not lately: pauseRetry).
func (h *Handler) sharedPause(ctx context.Context) time.Duration {
	if time.Now().UnixNano() < h.pauseAway.Load() {
		return 0
	}
	tctx, cancel := context.WithTimeout(ctx, pauseTimeout)
	defer cancel()
	c := h.cfg.Redis
	ms, err := c.Do(tctx, c.B().Pttl().Key(h.cfg.Keys.WebhookPause(h.cfg.Group)).Build()).AsInt64()
	if ctx.Err() != nil {
		return 0 // stopping, not Redis away: the caller's sleep says so
	}
	h.pauseAnswered(err)
	if err != nil || ms <= 0 { // -2: no pause; -1 cannot be (extendScript)
		return 0
	}
	// Not cut to this process's RetryAfterMax: the process answered cut
	// it to its own, and a cut here would end only this wait, the next
	// read finding the rest.
	return time.Duration(ms) * time.Millisecond
}

// pauseAnswered notes how a call on the pause key went, and logs once when
// Redis stops answering it and once when it answers again.
func (h *Handler) pauseAnswered(err error) {
	if err == nil {
		if h.pauseAway.Swap(0) != 0 {
			h.log.Info().Msg("the receiver's shared pause is readable in Redis again: every webhook process of the group honours a pause any of them was asked for")
		}
		return
	}
	if h.pauseAway.Swap(time.Now().Add(pauseRetry).UnixNano()) == 0 {
		h.log.Warn().Err(err).Msg("cannot reach the receiver's shared pause in Redis: until it answers, this process honours only the pauses " +
			"its own POSTs were asked for, and the other webhook processes of the group may POST during them")
	}
}

// Pauses reads what is left of the pause each of groups' receivers asked
// for, by group (none: not there): the time until their webhook processes
// POST to it again, which status shows beside a group that otherwise reads
// idle.
func Pauses(ctx context.Context, c rueidis.Client, keys pipeline.Keys, groups []string) (map[string]time.Duration, error) {
	if len(groups) == 0 {
		return nil, nil
	}
	cmds := make(rueidis.Commands, len(groups))
	for i, g := range groups {
		cmds[i] = c.B().Pttl().Key(keys.WebhookPause(g)).Build()
	}
	out := map[string]time.Duration{}
	for i, r := range c.DoMulti(ctx, cmds...) {
		ms, err := r.AsInt64()
		if err != nil {
			return nil, fmt.Errorf("receiver paused %s: %w", groups[i], err)
		}
		if ms > 0 {
			out[groups[i]] = time.Duration(ms) * time.Millisecond
		}
	}
	return out, nil
}
