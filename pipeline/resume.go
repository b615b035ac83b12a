package pipeline

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// A process restarted under the same consumer name (--consumer, as a pod's
// name outlives its container's restarts) finds what it read and did not
// ack before it died still pending under that name. Left to the claim, it
// waited ClaimIdle (30 s by default): a scheduled start read by a split
// killed before its ack went out half a minute late, against DESIGN's 1 s.
// The runner takes it back at start instead (leftovers, resumeOwn).

// maxLeftovers bounds the ids listed per stream at start; the claim takes
// any beyond.
const maxLeftovers = 10_000

// leftover is what a stream held pending under the consumer's name before
// this process read anything: ids ascending, and the least idle time among
// them then.
type leftover struct {
	l       Lane
	p       int
	ids     []string
	minIdle int64 // ms
}

// leftovers lists, before the runner reads anything, the entries pending
// under its consumer name (one XPENDING a stream, in one pipelined call):
// so the list holds only what a process before this one left. A failure
// (an outage) leaves them to the claim.
func (r *Runner) leftovers(ctx context.Context) []leftover {
	var out []leftover
	var cmds rueidis.Commands
	for _, l := range r.lanes() {
		for _, p := range r.opts.Partitions {
			out = append(out, leftover{l: l, p: p})
			cmds = append(cmds, r.rdb.B().Xpending().Key(r.stream(l, p)).Group(r.opts.Group).Start("-").End("+").
				Count(maxLeftovers).Consumer(r.opts.Consumer).Build())
		}
	}
	left := out[:0]
	for i, res := range r.rdb.DoMulti(ctx, cmds...) {
		rows, err := res.ToArray()
		if err != nil {
			if ctx.Err() == nil && !isNoGroup(err) && !r.down.quiet(err) {
				r.log.Warn().Err(err).Str("stream", r.stream(out[i].l, out[i].p)).
					Msg("could not list this consumer's own pending entries at start; the claim takes them once idle")
			}
			continue
		}
		o := out[i]
		for _, row := range pendingRows(rows) {
			if len(o.ids) == 0 || row.idle < o.minIdle {
				o.minIdle = row.idle
			}
			o.ids = append(o.ids, row.id)
		}
		if len(o.ids) > 0 {
			left = append(left, o)
		}
	}
	return left
}

// resumeOwn hands the workers the leftovers as the claim hands its entries
// (handOff; dead letters past MaxDeliveries: the XCLAIM counts a delivery,
// as XAUTOCLAIM does). The XCLAIM takes an entry only if it has been idle
// at least as long as the leftovers were: one another process claimed
// since (its idle time started again) stays that process's.
func (r *Runner) resumeOwn(ctx context.Context, left []leftover, work queues) {
	for _, o := range left {
		if err := r.resume(ctx, o, work.of(o.l)); err != nil && ctx.Err() == nil && !r.down.quiet(err) {
			r.log.Warn().Err(err).Str("lane", o.l.String()).Int("partition", o.p).
				Msg("could not take back this consumer's own pending entries at start; the claim takes them once idle")
		}
	}
}

func (r *Runner) resume(ctx context.Context, o leftover, work chan<- *Batch) error {
	stream := r.stream(o.l, o.p)
	for ids := range slices.Chunk(o.ids, r.opts.BatchSize) {
		if ctx.Err() != nil {
			return nil // stopped: the rest waits for a claim
		}
		if ok, err := r.resumeChunk(ctx, o, work, stream, ids); err != nil || !ok {
			return err
		}
	}
	return nil
}

// resumeChunk takes back ids and hands them out; false once the stop came.
// Its Redis calls are not cut by the stop (outliving), as a claim's are
// not (claimStep): the XCLAIM counted a delivery of each entry it took
// even when the cut dropped its reply.
func (r *Runner) resumeChunk(ctx context.Context, o leftover, work chan<- *Batch, stream string, ids []string) (bool, error) {
	cctx, settled := outliving(ctx)
	defer settled()
	cmd := r.rdb.B().Xclaim().Key(stream).Group(r.opts.Group).Consumer(r.opts.Consumer).
		MinIdleTime(strconv.FormatInt(o.minIdle, 10)).Id(ids...).Build()
	sent := time.Now() // the claimed entries' idle time starts after it: their lease (Held) from it
	xs, err := r.rdb.Do(cctx, cmd).ToArray()
	if err != nil {
		return false, fmt.Errorf("xclaim %s: %w", stream, err)
	}
	entries, err := rangeEntries(xs)
	if err != nil {
		return false, fmt.Errorf("xclaim %s: %w", stream, err)
	}
	if entries = r.notInHand(cctx, stream, entries); len(entries) == 0 {
		return true, nil // none taken, or all in hand already (the claim took them first)
	}
	r.metrics.claimed(r.series(o.l, o.p), len(entries))
	live, err := r.dropExhausted(cctx, stream, entries)
	if err != nil {
		return false, err
	}
	if len(live) == 0 {
		return true, nil
	}
	return r.handOff(ctx, work, &Batch{Stream: stream, Partition: o.p, Lane: o.l, Entries: live, claimed: true,
		lease: newLease(sent, r.opts.ClaimIdle)}), nil
}
