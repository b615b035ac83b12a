package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/redis/rueidis"
)

// readLoop reads new entries of one partition and hands them to the workers.
func (r *Runner) readLoop(ctx context.Context, l Lane, p int, work chan<- *Batch) {
	stream := r.stream(l, p)
	backoff := newBackoff(50*time.Millisecond, 5*time.Second)
	last := "" // the newest entry this loop read: a read cut at the stop delivered only newer ones
	for ctx.Err() == nil {
		cmd := r.rdb.B().Xreadgroup().Group(r.opts.Group, r.opts.Consumer).Count(int64(r.opts.BatchSize)).
			Block(r.opts.Block.Milliseconds()).Streams().Key(stream).Id(">").Build()
		sent := time.Now() // the entries' idle time starts after it: their lease (Held) from it
		entries, err := xreadEntries(r.rdb.Do(ctx, cmd))
		if err == nil || rueidis.IsRedisNil(err) {
			r.down.answered()
			r.unretired()
		}
		if err != nil {
			if rueidis.IsRedisNil(err) {
				continue
			}
			if ctx.Err() != nil {
				r.giveBackCutRead(ctx, stream, sent, last)
				continue
			}
			r.onReadError(ctx, stream, err, backoff)
			continue
		}
		backoff.reset()
		if len(entries) == 0 {
			continue
		}
		if len(entries) < r.opts.BatchSize && r.opts.Linger > 0 {
			entries = r.linger(ctx, stream, entries)
		}
		last = entries[len(entries)-1].ID
		r.metrics.read(r.series(l, p), len(entries))
		if !r.handOff(ctx, work, &Batch{Stream: stream, Partition: p, Lane: l, Entries: entries, lease: newLease(sent, r.opts.ClaimIdle)}) {
			return // read but never acked: they stay pending and are claimed later
		}
	}
}

// linger waits Linger, then reads what has come since, up to BatchSize
// entries in all, without blocking. A failed read hands over what it has:
// the next read meets the error again, and onReadError deals with it. The
// entries read first are already pending for this consumer; a wait far
// below ClaimIdle leaves them ours.
func (r *Runner) linger(ctx context.Context, stream string, entries []Entry) []Entry {
	t := time.NewTimer(r.opts.Linger)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return entries
	case <-t.C:
	}
	cmd := r.rdb.B().Xreadgroup().Group(r.opts.Group, r.opts.Consumer).Count(int64(r.opts.BatchSize - len(entries))).
		Streams().Key(stream).Id(">").Build()
	// Not cut by the stop (outliving): a read whose reply the cut dropped
	// had still delivered its entries to this consumer, a delivery nobody
	// gave back. Not blocking, it answers at once; handOff gives back what
	// the stop leaves. (The blocking read, readLoop's, is cut: waiting for
	// it would hold each stop up to Block; giveBackCutRead follows it.)
	rctx, settled := outliving(ctx)
	defer settled()
	more, err := xreadEntries(r.rdb.Do(rctx, cmd))
	if err != nil {
		return entries
	}
	return append(entries, more...)
}

// giveBackCutRead gives back the deliveries of a blocking read the stop
// cut (sent at sent, after the entry last, "" if none): rueidis closes the
// read's connection at the cut, but Redis may have served the read first,
// and its entries are then pending for this consumer, delivered once, with
// nobody to hand them on. Their claim counted a second delivery: with
// --max-deliveries 1 they went to the DLQ never handled. (Letting the read
// answer instead would hold each stop up to Block.)
//
// They are the entries pending for this consumer newer than last,
// delivered once since the read was sent (idle no longer than that), not
// in hand, and not given back at this stop already (a claimed entry let go
// has its count before the claim, often 1, and a fresh idle time). Only a
// claimed entry whose delivery was given back before (at another
// process's stop) and that its handler failed in that same instant could
// look the same; it gets one try more. Best effort, like releaseAtStop.
func (r *Runner) giveBackCutRead(ctx context.Context, stream string, sent time.Time, last string) {
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	start := "-"
	if last != "" {
		start = "(" + last
	}
	cmd := r.rdb.B().Xpending().Key(stream).Group(r.opts.Group).Start(start).End("+").
		Count(int64(2*r.opts.BatchSize + 64)).Consumer(r.opts.Consumer).Build()
	rows, err := r.rdb.Do(gctx, cmd).ToArray()
	since := time.Since(sent).Milliseconds()
	if err != nil {
		r.log.Warn().Err(err).Str("stream", stream).
			Msg("could not look for entries a read cut at the stop delivered; their next claim counts one more")
		return
	}
	var ids []string
	for _, row := range pendingRows(rows) {
		key := stream + "/" + row.id
		_, busy := r.inHand.Load(key)
		_, gone := r.letGo.Load(key)
		if row.count == 1 && row.idle <= since && !busy && !gone {
			ids = append(ids, row.id)
		}
	}
	r.releaseAtStop(ctx, stream, ids)
}

func (r *Runner) onReadError(ctx context.Context, stream string, err error, b *backoff) {
	if isNoGroup(err) {
		cerr := r.recreate(ctx, stream)
		if cerr == nil {
			return
		}
		if errors.Is(cerr, errRetired) {
			b.sleep(ctx)
			return
		}
	}
	if !r.down.quiet(err) {
		r.log.Warn().Err(err).Str("stream", stream).Msg("read failed, retrying")
	}
	b.sleep(ctx)
}

// xreadEntries decodes the reply of an XREADGROUP of one stream straight
// into entries: a map of streams (RESP3) or an array of [stream, entries]
// pairs (RESP2), holding one stream here.
func xreadEntries(res rueidis.RedisResult) ([]Entry, error) {
	msg, err := res.ToMessage()
	if err != nil {
		return nil, err
	}
	var xs []rueidis.RedisMessage
	if msg.IsMap() {
		m, err := msg.ToMap()
		if err != nil {
			return nil, err
		}
		for _, v := range m {
			if xs, err = v.ToArray(); err != nil {
				return nil, err
			}
		}
	} else {
		streams, err := msg.ToArray()
		if err != nil {
			return nil, err
		}
		for _, s := range streams {
			pair, err := s.ToArray()
			if err != nil || len(pair) != 2 {
				return nil, fmt.Errorf("xreadgroup reply: a stream is not a [name, entries] pair")
			}
			if xs, err = pair[1].ToArray(); err != nil {
				return nil, err
			}
		}
	}
	return rangeEntries(xs)
}

// rangeEntries decodes [id, [field, value...]] pairs (XRANGE, XREADGROUP,
// XAUTOCLAIM), skipping entries deleted while pending (nil fields).
func rangeEntries(xs []rueidis.RedisMessage) ([]Entry, error) {
	out := make([]Entry, 0, len(xs))
	for i := range xs {
		pair, err := xs[i].ToArray()
		if err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("stream entry is not an [id, fields] pair")
		}
		id, err := pair[0].ToString()
		if err != nil {
			return nil, fmt.Errorf("stream entry id: %w", err)
		}
		if pair[1].IsNil() {
			continue // deleted while pending
		}
		fv, err := pair[1].ToArray()
		if err != nil || len(fv)%2 != 0 {
			return nil, fmt.Errorf("stream entry %s: fields are not field/value pairs", id)
		}
		fields := make(map[string]string, len(fv)/2)
		for j := 0; j < len(fv); j += 2 {
			k, _ := fv[j].ToString()
			v, _ := fv[j+1].ToString()
			fields[k] = v
		}
		out = append(out, Entry{ID: id, Fields: fields})
	}
	return out, nil
}

// backoff is exponential with full jitter.
type backoff struct {
	base, max, cur time.Duration
}

func newBackoff(base, max time.Duration) *backoff { return &backoff{base: base, max: max, cur: base} }

func (b *backoff) reset() { b.cur = b.base }

func (b *backoff) sleep(ctx context.Context) {
	d := time.Duration(rand.Int64N(int64(b.cur)) + 1)
	b.cur = min(b.cur*2, b.max)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
