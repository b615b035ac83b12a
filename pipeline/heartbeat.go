package pipeline

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// keepScript resets the idle time of the entries still pending for this
// consumer (XCLAIM to itself with min-idle 0, JUSTID so the delivery count
// stays), so no other consumer's XAUTOCLAIM takes over a batch that is merely
// slow. Entries another consumer already claimed are left alone: a plain
// XCLAIM would steal them back and both would handle them. Returns {kept,
// taken}: how many were kept, and how many are pending for another consumer
// now or that the stream lost (the rest were acked already).
//
// KEYS[1] input stream. ARGV: group, consumer, id1..idn in stream order.
var keepScript = rueidis.NewLuaScript(`
local group, consumer, n = ARGV[1], ARGV[2], #ARGV - 2
if n <= 0 then return {0, 0} end
local want, owned, taken = {}, {}, 0
for i = 3, #ARGV do want[ARGV[i]] = true end
-- one XPENDING over the span, filtered to this consumer, usually finds all
for _, e in ipairs(redis.call('XPENDING', KEYS[1], group, ARGV[3], ARGV[#ARGV], 2 * n + 64, consumer)) do
  if want[e[1]] then owned[#owned + 1] = e[1]; want[e[1]] = nil end
end
if #owned < n then
  -- the span held more of our entries than the count: check the rest one by one
  for i = 3, #ARGV do
    if want[ARGV[i]] then
      local p = redis.call('XPENDING', KEYS[1], group, ARGV[i], ARGV[i], 1)
      if #p > 0 then
        if p[1][2] == consumer then owned[#owned + 1] = ARGV[i] else taken = taken + 1 end
      elseif #redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i]) == 0 then
        -- neither pending nor in the stream: not acked (acked entries stay
        -- until trimmed, long after), but lost with the stream, which was
        -- recreated empty since
        taken = taken + 1
      end
    end
  end
end
for s = 1, #owned, 1000 do
  local args = {KEYS[1], group, consumer, 0}
  for i = s, math.min(s + 999, #owned) do args[#args + 1] = owned[i] end
  args[#args + 1] = 'JUSTID'
  redis.call('XCLAIM', unpack(args))
end
return {#owned, taken}
`)

// keepClaimed keeps b's entries claimed by this consumer every KeepEvery
// from the moment the batch is read until the returned stop is called
// (process is done with it, or it is never handed to a worker). A live
// consumer keeps its work, however slow a handler or however long the batch
// waited for a free worker; only a dead or hung process's entries go idle
// and are claimed by another consumer.
//
// Each keep also checks that the entries are still this consumer's: when
// one is not (claimed by another consumer, or acked by another consumer's
// commit, or Redis lost the stream, the group or our read), b.Lost is closed, so a slow handler stops working for entries
// someone else now owns within KeepEvery, instead of racing them. A keep
// that finds every entry still ours renews b's lease (Held) from when it
// was sent; one that fails or finds one taken renews nothing.
func (r *Runner) keepClaimed(b *Batch) (stop func()) {
	ids := b.allIDs()
	b.lost = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		every(ctx, r.opts.KeepEvery, func() bool {
			sent := time.Now()
			overdue := r.keepOverdue()
			b.keepDue.Store(sent.Add(overdue).UnixNano())
			kept, taken, err := r.keep(ctx, b.Stream, ids)
			b.keepDue.Store(0)
			if time.Since(sent) > overdue {
				// Hung, then answered (or failed): away until now.
				b.unkept.Store(time.Now().UnixNano())
			}
			switch {
			case ctx.Err() != nil:
				return false
			case isNoGroup(err) || err == nil && (taken > 0 || kept+int(b.acking.Load()) < len(ids)):
				// Entries acked by our own commit (racing this tick, or a
				// part's: processEach) are not lost; acked ones beyond those
				// were another consumer's, which claimed them and handled them
				// through, or Redis lost our read of them (a restart without
				// appendfsync always) and another consumer reads them anew.
				r.log.Warn().Str("stream", b.Stream).Int("entries", len(ids)).Int("taken", taken).Int("gone", len(ids)-kept-taken).
					Msg("batch no longer ours (another consumer took or finished it, or Redis lost the stream or our read); stopping it")
				close(b.lost)
				return false
			case err == nil:
				// Every entry still ours (or acked by our own commit), idle
				// from the keep on: nobody claims them for ClaimIdle.
				if b.lease != nil {
					b.lease.renew(sent)
				}
			default:
				if unreachable(err) {
					b.unkept.Store(time.Now().UnixNano())
				}
				if !r.down.quiet(err) {
					r.log.Warn().Err(err).Str("stream", b.Stream).Msg("could not keep the batch claimed")
				}
			}
			return true
		})
	})
	var once sync.Once
	return func() { once.Do(func() { cancel(); wg.Wait() }) }
}

// keepOverdue is how long a keep may wait for its answer before Redis
// counts as away for its batch (Batch.RedisAwaySince): far above a keep's
// time on a Redis that answers (a script over a batch's ids, a millisecond
// or so), and KeepEvery at least, so a keep is overdue only when its
// successor would be due already.
func (r *Runner) keepOverdue() time.Duration { return max(r.opts.KeepEvery, time.Second) }

// keep resets the idle time of ids still pending for this consumer and
// returns how many they were, and how many of ids another consumer holds now
// (or the stream lost); the rest were acked.
func (r *Runner) keep(ctx context.Context, stream string, ids []string) (kept, taken int, err error) {
	if len(ids) == 0 {
		return 0, 0, nil
	}
	args := make([]string, 0, 2+len(ids))
	args = append(args, r.opts.Group, r.opts.Consumer)
	args = append(args, ids...)
	res, err := keepScript.Exec(ctx, r.rdb, []string{stream}, args).AsIntSlice()
	if err != nil {
		return 0, 0, fmt.Errorf("keep %s claimed: %w", stream, err)
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("keep %s claimed: unexpected reply %v", stream, res)
	}
	return int(res[0]), int(res[1]), nil
}

// handOff gives a read or claimed batch to a free worker, keeping it claimed
// while it waits and while it is processed. False if ctx ended first; the
// entries then stay pending, go idle and are claimed later.
//
// An entry already in hand in this process (its first batch still waits for
// a worker or is being handled, and the claim loop took it again because a
// keep failed or came late) is left out: one process never works on an
// entry twice at once. The stage's handler sees each entry once per
// delivery. (The claims leave such entries out first, and give back the
// delivery they counted: notInHand. This is the guard for one handed out
// in between.)
func (r *Runner) handOff(ctx context.Context, work chan<- *Batch, b *Batch) bool {
	mine := b.Entries[:0:0]
	for _, e := range r.dropOthers(ctx, b.Stream, b.Entries) {
		if _, busy := r.inHand.LoadOrStore(b.Stream+"/"+e.ID, struct{}{}); !busy {
			mine = append(mine, e)
		}
	}
	if len(mine) == 0 {
		return true
	}
	b.Entries = mine
	b.stop, b.rdb = ctx.Done(), r.rdb
	keep := r.keepClaimed(b)
	b.release = func() {
		keep()
		for _, e := range mine {
			r.inHand.Delete(b.Stream + "/" + e.ID)
		}
	}
	// The stop first: a select with a free worker and the stop both ready
	// draws one at random, and a claim answered after the stop (it
	// outlives it: claimStep) handed its batch to a handler that could only
	// leave it, or, past ShutdownTimeout, to a worker that never called
	// the handler nor gave back the delivery.
	if ctx.Err() == nil {
		select {
		case work <- b:
			return true
		case <-ctx.Done():
		}
	}
	// Never handled: the stop, not the entries, left them pending.
	r.releaseAtStop(ctx, b.Stream, b.allIDs())
	b.release()
	return false
}

// dropOthers acks the entries addressed to another group (FieldGroup) and
// returns the rest, es itself when there are none (every batch but a
// retried dead letter's). An ack that fails leaves them pending: a claim
// brings them back here.
func (r *Runner) dropOthers(ctx context.Context, stream string, es []Entry) []Entry {
	others := 0
	for _, e := range es {
		if g, ok := e.Fields[FieldGroup]; ok && g != r.opts.Group {
			others++
		}
	}
	if others == 0 {
		return es
	}
	kept, ids := make([]Entry, 0, len(es)-others), make([]string, 0, others)
	for _, e := range es {
		if g, ok := e.Fields[FieldGroup]; ok && g != r.opts.Group {
			ids = append(ids, e.ID)
			continue
		}
		kept = append(kept, e)
	}
	if err := r.rdb.Do(ctx, r.rdb.B().Xack().Key(stream).Group(r.opts.Group).Id(ids...).Build()).Error(); err != nil {
		r.log.Warn().Err(err).Str("stream", stream).Int("entries", len(ids)).Msg("could not ack entries retried for another group; left pending")
	}
	return kept
}
