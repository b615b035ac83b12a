package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// claimLoop takes over entries that sat in any consumer's pending list longer
// than ClaimIdle (that consumer died or hung), dead-letters those delivered
// more than MaxDeliveries times, and hands the rest to the workers.
func (r *Runner) claimLoop(ctx context.Context, work queues) {
	r.everyPartition(ctx, max(r.opts.ClaimIdle/4, 100*time.Millisecond), func(l Lane, p int) {
		if err := r.claimPartition(ctx, l, p, work.of(l)); err != nil && ctx.Err() == nil && !r.down.quiet(err) {
			r.log.Warn().Err(err).Str("lane", l.String()).Int("partition", p).Msg("claim failed")
		}
	})
}

// everyPartition calls fn for each lane and partition the runner serves,
// every interval, until ctx ends: the claim poller (the delay poller asks
// first which partitions have anything: delayLoop).
func (r *Runner) everyPartition(ctx context.Context, interval time.Duration, fn func(l Lane, p int)) {
	every(ctx, interval, func() bool {
		for _, l := range r.lanes() {
			for _, p := range r.opts.Partitions {
				fn(l, p)
			}
		}
		return true
	})
}

// every calls tick every interval until ctx ends or tick returns false: the
// runner's pollers.
func every(ctx context.Context, interval time.Duration, tick func() bool) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !tick() {
			return
		}
	}
}

func (r *Runner) claimPartition(ctx context.Context, l Lane, p int, work chan<- *Batch) error {
	stream := r.stream(l, p)
	cursor := "0-0"
	// Bounded: a partition with a huge backlog is finished on the next tick.
	for range 100 {
		if ctx.Err() != nil {
			return nil // stopped: the rest waits for a claim
		}
		next, err := r.claimStep(ctx, l, p, work, stream, cursor)
		if err != nil || next == "0-0" {
			return err
		}
		cursor = next
	}
	return nil
}

// claimStep runs one XAUTOCLAIM step of stream from cursor and hands out
// what it took. It returns the next cursor, "0-0" when the partition is
// done or the stop came.
//
// Its Redis calls are not cut by the stop (outliving): an XAUTOCLAIM whose
// reply the cut dropped had still taken its entries and counted a delivery
// of each, and nobody gave it back. Such a step gets its answer now (Redis
// answers a claim in a millisecond or so), and handOff gives back the
// deliveries of what it can no longer hand out.
func (r *Runner) claimStep(ctx context.Context, l Lane, p int, work chan<- *Batch, stream, cursor string) (string, error) {
	cctx, settled := outliving(ctx)
	defer settled()
	sent := time.Now() // the claimed entries' idle time starts after it: their lease (Held) from it
	entries, next, deleted, err := r.autoclaim(cctx, stream, cursor)
	if err != nil {
		return "", err
	}
	if len(deleted) > 0 {
		// Trimmed or deleted while pending: XAUTOCLAIM already dropped
		// them from the pending list; nothing is left to process.
		r.log.Warn().Str("stream", stream).Int("count", len(deleted)).Msg("pending entries were deleted before processing")
	}
	entries = r.notInHand(cctx, stream, entries)
	if len(entries) > 0 {
		r.metrics.claimed(r.series(l, p), len(entries))
		live, err := r.dropExhausted(cctx, stream, entries)
		if err != nil {
			return "", err
		}
		if len(live) > 0 && !r.handOff(ctx, work, &Batch{Stream: stream, Partition: p, Lane: l, Entries: live, claimed: true,
			lease: newLease(sent, r.opts.ClaimIdle)}) {
			return "0-0", nil
		}
	}
	return next, nil
}

// notInHand returns entries but those this process has in hand (handOff):
// a claim of its own that took them again because their keep came later
// than ClaimIdle (a slow handler, a GC pause, a loaded box). Such a claim
// is no delivery: the entry's one handler still works on it. Yet it
// counted one, and a slow handler walked its own entries to MaxDeliveries,
// and dropExhausted dead-lettered them while they were being handled. So
// their deliveries are given back, in one call (giveBackScript; one another
// consumer took since is left alone), and they are neither dead-lettered
// nor handed out again. An entry whose batch let it go between the claim
// and this check counts, as a claim of an entry left pending should.
func (r *Runner) notInHand(ctx context.Context, stream string, entries []Entry) []Entry {
	var rest []Entry
	var mine []string
	for i, e := range entries {
		if _, busy := r.inHand.Load(stream + "/" + e.ID); !busy {
			if mine != nil {
				rest = append(rest, e)
			}
			continue
		}
		if mine == nil {
			rest = append(make([]Entry, 0, len(entries)), entries[:i]...)
		}
		mine = append(mine, e.ID)
	}
	if mine == nil {
		return entries
	}
	if err := r.giveBack(ctx, stream, mine); err != nil {
		r.log.Warn().Err(err).Int("entries", len(mine)).
			Msg("could not give back the delivery a claim counted for entries this process is handling; it counts one more")
	}
	return rest
}

// autoclaim runs one XAUTOCLAIM step. Redis 7 replies [cursor, entries, deleted ids].
func (r *Runner) autoclaim(ctx context.Context, stream, cursor string) ([]Entry, string, []string, error) {
	cmd := r.rdb.B().Xautoclaim().Key(stream).Group(r.opts.Group).Consumer(r.opts.Consumer).
		MinIdleTime(strconv.FormatInt(r.opts.ClaimIdle.Milliseconds(), 10)).Start(cursor).
		Count(int64(r.opts.BatchSize)).Build()
	arr, err := r.rdb.Do(ctx, cmd).ToArray()
	if err != nil {
		if isNoGroup(err) {
			if err := r.recreate(ctx, stream); errors.Is(err, errRetired) {
				return nil, "0-0", nil, nil // said once by recreate
			} else if err != nil {
				return nil, "", nil, err
			}
			return nil, "0-0", nil, nil
		}
		return nil, "", nil, fmt.Errorf("xautoclaim %s: %w", stream, err)
	}
	if len(arr) < 2 {
		return nil, "", nil, fmt.Errorf("xautoclaim %s: unexpected reply of %d elements", stream, len(arr))
	}
	next, err := arr[0].ToString()
	if err != nil {
		return nil, "", nil, fmt.Errorf("xautoclaim %s cursor: %w", stream, err)
	}
	xs, err := arr[1].ToArray()
	if err != nil {
		return nil, "", nil, fmt.Errorf("xautoclaim %s entries: %w", stream, err)
	}
	entries, err := rangeEntries(xs)
	if err != nil {
		return nil, "", nil, fmt.Errorf("xautoclaim %s entries: %w", stream, err)
	}
	var deleted []string
	if len(arr) > 2 {
		deleted, _ = arr[2].AsStrSlice()
	}
	return entries, next, deleted, nil
}

// dropExhausted dead-letters claimed entries delivered more than MaxDeliveries
// times and returns the others. Delivery counts come from one XPENDING over
// the claimed id span.
func (r *Runner) dropExhausted(ctx context.Context, stream string, entries []Entry) ([]Entry, error) {
	counts, err := r.deliveryCounts(ctx, stream, entries)
	if err != nil {
		return nil, err
	}
	var live []Entry
	var dead []deadEntry
	for _, e := range entries {
		if n := counts[e.ID]; n > r.opts.MaxDeliveries {
			dead = append(dead, deadEntry{Entry: e, Reason: exhausted(n, r.opts.MaxDeliveries), Deliveries: n})
			continue
		}
		live = append(live, e)
	}
	if len(dead) == 0 {
		return live, nil
	}
	last := r.lastErrors(ctx, stream, dead)
	for i := range dead {
		if msg := last[i]; msg != "" {
			dead[i].Reason += "; last error: " + msg
		}
	}
	if err := r.deadLetter(ctx, stream, dead, ""); err != nil {
		return nil, err
	}
	ids := make([]string, len(dead))
	for i, d := range dead {
		ids[i] = d.ID
		r.lastErr.Delete(stream + "/" + d.ID)
	}
	r.noteErrors(ctx, stream, nil, ids)
	return live, nil
}

// exhausted is the reason of an entry dead-lettered by the claim that
// delivered it the n-th time, past limit: the claim hands it to no
// handler, so handlers had the n-1 before (limit, unless it was lowered
// since). "delivered 3 times (max 2)" was true, and read as a stage that
// broke its own limit by one.
func exhausted(n, limit int64) string {
	return fmt.Sprintf("claimed for delivery %d, past --max-deliveries %d", n, limit)
}

// lastErrors are the last handler errors of dead's entries ("" if none is
// known): this process's own notes, else those another consumer (or this
// one before a restart) left in Redis. Without Redis, only the own.
func (r *Runner) lastErrors(ctx context.Context, stream string, dead []deadEntry) []string {
	out := make([]string, len(dead))
	var missing []string
	var at []int // the index in dead of each of missing
	for i, d := range dead {
		if v, ok := r.lastErr.Load(stream + "/" + d.ID); ok {
			out[i] = v.(lastError).msg
		} else {
			missing, at = append(missing, d.ID), append(at, i)
		}
	}
	if len(missing) == 0 {
		return out
	}
	vals, err := r.rdb.Do(ctx, r.rdb.B().Hmget().Key(errorsKey(stream)).Field(missing...).Build()).ToArray()
	if err != nil {
		r.log.Warn().Err(err).Str("stream", stream).Msg("could not read the entries' errors; dead-lettering without them")
		return out
	}
	for j, v := range vals {
		if j < len(at) {
			out[at[j]], _ = v.ToString() // nil (no note): ""
		}
	}
	return out
}

// deliveryCounts are the delivery counts of claimed entries (in stream
// order), from one XPENDING over their span, filtered to this consumer. The
// span may hold many more of this consumer's entries than were claimed (its
// batches in hand lie between a dead consumer's entries): the counts the
// span's reply left out are read one id at a time, in one pipelined call.
// An entry left without a count would be handed out again however often it
// was delivered.
func (r *Runner) deliveryCounts(ctx context.Context, stream string, entries []Entry) (map[string]int64, error) {
	n := len(entries)
	cmd := r.rdb.B().Xpending().Key(stream).Group(r.opts.Group).Start(entries[0].ID).End(entries[n-1].ID).Count(int64(n) * 4).
		Consumer(r.opts.Consumer).Build()
	rows, err := r.rdb.Do(ctx, cmd).ToArray()
	if err != nil {
		return nil, fmt.Errorf("xpending %s: %w", stream, err)
	}
	counts := make(map[string]int64, len(rows))
	addRows(counts, rows)
	var cmds rueidis.Commands
	for _, e := range entries {
		if _, ok := counts[e.ID]; !ok {
			cmds = append(cmds, r.rdb.B().Xpending().Key(stream).Group(r.opts.Group).Start(e.ID).End(e.ID).Count(1).Build())
		}
	}
	for _, res := range r.rdb.DoMulti(ctx, cmds...) {
		rows, err := res.ToArray()
		if err != nil {
			return nil, fmt.Errorf("xpending %s: %w", stream, err)
		}
		addRows(counts, rows)
	}
	return counts, nil
}

// addRows adds the delivery counts of XPENDING's extended form rows to
// counts.
func addRows(counts map[string]int64, rows []rueidis.RedisMessage) {
	for _, row := range pendingRows(rows) {
		counts[row.id] = row.count
	}
}

// pendingRow is a row of XPENDING's extended form: an entry's id, its idle
// time in ms and its delivery count.
type pendingRow struct {
	id          string
	idle, count int64
}

// pendingRows decodes XPENDING's extended form (id, consumer, idle, count),
// skipping malformed rows.
func pendingRows(rows []rueidis.RedisMessage) []pendingRow {
	out := make([]pendingRow, 0, len(rows))
	for _, row := range rows {
		f, err := row.ToArray()
		if err != nil || len(f) < 4 {
			continue
		}
		var r pendingRow
		r.id, _ = f[0].ToString()
		r.idle, _ = f[2].AsInt64()
		r.count, _ = f[3].AsInt64()
		out = append(out, r)
	}
	return out
}
