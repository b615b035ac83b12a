package pipeline

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// Delayed work (a deliver retry after its backoff, a campaign scheduled for
// later) waits in a sorted set beside the stream it is for, Keys.Delayed,
// scored by the unix ms at which it is due. The runner that reads the stream
// moves due members into it (releaseScript), atomically: each is XADDed once
// and removed in the same step, so a crash never loses or doubles one. A
// member is the entry's fields as netstrings ("5:hello", binary-safe: user
// id batches are binary); two identical entries due at
// different times are one member at the later time, which is what a repeated
// commit (a redelivered batch) or a repeated schedule needs.

type delayed struct {
	key    string // Keys.Delayed of the target stream
	at     int64  // due, unix ms
	member string
}

// EmitAt queues a downstream entry to be XADDed to stream at at (at once if at
// is not in the future), in the same commit as the rest of the batch: a
// retry's next attempt, a follow-up that must wait.
func (b *Batch) EmitAt(at time.Time, stream string, fields ...string) {
	b.delays = append(b.delays, delayed{key: DelayedKey(stream), at: at.UnixMilli(), member: delayMember(fields)})
}

// EmitAt schedules messages outside any handler (the API scheduling a
// campaign): each is XADDed to its stream at at by the runner reading that
// stream. Idempotent: scheduling the same message again only moves its time.
func EmitAt(ctx context.Context, c rueidis.Client, at time.Time, msgs ...Message) error {
	cmds := make(rueidis.Commands, len(msgs))
	for i, m := range msgs {
		cmds[i] = c.B().Zadd().Key(DelayedKey(m.Stream)).ScoreMember().
			ScoreMember(float64(at.UnixMilli()), delayMember(m.Fields)).Build()
	}
	for i, res := range c.DoMulti(ctx, cmds...) {
		if err := res.Error(); err != nil {
			return fmt.Errorf("schedule on %s: %w", msgs[i].Stream, err)
		}
	}
	return nil
}

// Unschedule removes a message queued by EmitAt before it is due (a canceled
// scheduled campaign). It reports whether the message was still waiting.
func Unschedule(ctx context.Context, c rueidis.Client, m Message) (bool, error) {
	n, err := c.Do(ctx, c.B().Zrem().Key(DelayedKey(m.Stream)).Member(delayMember(m.Fields)).Build()).AsInt64()
	if err != nil {
		return false, fmt.Errorf("unschedule on %s: %w", m.Stream, err)
	}
	return n == 1, nil
}

// ScheduledAt is when a message queued by EmitAt is due, and whether it
// still waits (not yet released into its stream, nor unscheduled).
func ScheduledAt(ctx context.Context, c rueidis.Client, m Message) (time.Time, bool, error) {
	ms, err := c.Do(ctx, c.B().Zscore().Key(DelayedKey(m.Stream)).Member(delayMember(m.Fields)).Build()).AsFloat64()
	if rueidis.IsRedisNil(err) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("schedule on %s: %w", m.Stream, err)
	}
	return time.UnixMilli(int64(ms)), true, nil
}

func delayMember(fields []string) string {
	n := 0
	for _, f := range fields {
		n += len(f) + 8
	}
	b := make([]byte, 0, n)
	for _, f := range fields {
		b = strconv.AppendInt(b, int64(len(f)), 10)
		b = append(b, ':')
		b = append(b, f...)
	}
	return string(b)
}

// releaseScript moves due members of a delayed set into their stream.
//
// KEYS[1] delayed set, KEYS[2] stream (same hash tag). ARGV[1] max members.
// Returns how many were released.
var releaseScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGE', KEYS[1], '-inf', string.format('%d', now), 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
for _, m in ipairs(due) do
  local f, pos = {}, 1
  while pos <= #m do
    local colon = string.find(m, ':', pos, true)
    local n = colon and tonumber(string.sub(m, pos, colon - 1))
    if not n then f = {}; break end -- not ours: dropped below
    f[#f + 1] = string.sub(m, colon + 1, colon + n)
    pos = colon + n + 1
  end
  if #f >= 2 and #f % 2 == 0 then
    redis.call('XADD', KEYS[2], '*', unpack(f))
  end
  redis.call('ZREM', KEYS[1], m)
end
return #due
`)

// releaseBatch bounds one release call: a backlog of due work (a long outage
// ending) is moved a slice at a time, between reads.
const releaseBatch = 1000

// delayLoop releases due delayed entries of the partitions this runner serves
// into its input stream every DelayPoll. Most sets are empty most of the
// time: one pipelined ZCARD of them all says which to run the release
// script on, where a script per lane and partition, one after the other,
// was deliver's and Redis's busiest idle work (32 round trips a tick).
func (r *Runner) delayLoop(ctx context.Context) {
	every(ctx, r.opts.DelayPoll, func() bool {
		type set struct {
			l Lane
			p int
		}
		var sets []set
		var cmds rueidis.Commands
		for _, l := range r.lanes() {
			for _, p := range r.opts.Partitions {
				sets = append(sets, set{l, p})
				cmds = append(cmds, r.rdb.B().Zcard().Key(DelayedKey(r.stream(l, p))).Build())
			}
		}
		for i, res := range r.rdb.DoMulti(ctx, cmds...) {
			// On an error the script runs anyway: it is the one that says.
			if n, err := res.AsInt64(); err == nil && n == 0 {
				continue
			}
			r.releaseAll(ctx, sets[i].l, sets[i].p)
		}
		return true
	})
}

// releaseAll moves every due delayed entry of lane l in partition p, a
// releaseBatch at a time.
func (r *Runner) releaseAll(ctx context.Context, l Lane, p int) {
	for ctx.Err() == nil {
		n, err := r.release(ctx, l, p)
		if err != nil {
			if ctx.Err() == nil && !r.down.quiet(err) {
				r.log.Warn().Err(err).Int("partition", p).Msg("releasing delayed entries failed; retrying")
			}
			return
		}
		if n < releaseBatch {
			return
		}
	}
}

// release moves the due delayed entries of lane l in partition p into its stream.
func (r *Runner) release(ctx context.Context, l Lane, p int) (int, error) {
	stream := r.stream(l, p)
	n, err := releaseScript.Exec(ctx, r.rdb, []string{DelayedKey(stream), stream},
		[]string{strconv.Itoa(releaseBatch)}).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("release delayed entries of %s: %w", stream, err)
	}
	if n > 0 {
		r.metrics.released(r.series(l, p), int(n))
	}
	return int(n), nil
}

// Hasten makes the delayed entries of stream whose fields begin with
// prefix (name, value pairs, in the order the entries were emitted with)
// due at at, those due later only: deliver, when a capped campaign's rate
// is raised, calls back the campaign's entries put off to slots of the old
// rate. It scans the whole set (ZSCAN MATCH), so it is for rare events,
// not a send's path. An entry released meanwhile is not added back. It
// returns how many it moved.
func Hasten(ctx context.Context, c rueidis.Client, stream string, at time.Time, prefix ...string) (int, error) {
	key, match := DelayedKey(stream), globEscape(delayMember(prefix))+"*"
	moved := 0
	var cursor uint64
	for {
		e, err := c.Do(ctx, c.B().Zscan().Key(key).Cursor(cursor).Match(match).Count(1000).Build()).AsScanEntry()
		if err != nil {
			return moved, fmt.Errorf("hasten on %s: %w", stream, err)
		}
		// ZSCAN answers member, score, member, score...
		if len(e.Elements) > 0 {
			cmd := c.B().Zadd().Key(key).Xx().Lt().Ch().ScoreMember()
			for i := 0; i+1 < len(e.Elements); i += 2 {
				cmd = cmd.ScoreMember(float64(at.UnixMilli()), e.Elements[i])
			}
			n, err := c.Do(ctx, cmd.Build()).AsInt64()
			if err != nil {
				return moved, fmt.Errorf("hasten on %s: %w", stream, err)
			}
			moved += int(n)
		}
		if e.Cursor == 0 {
			return moved, nil
		}
		cursor = e.Cursor
	}
}

// globEscape escapes s for a Redis MATCH pattern.
func globEscape(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return string(b)
}
