package split

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// maxPerQuery caps the boundaries found per query. The first query finds
// one, so the first range goes out after a single index probe; the count
// doubles from there.
const maxPerQuery = 64

// emitFunc is pipeline.Batch.EmitNow: ranges are emitted as they are cut,
// before the campaign's entry is done, so that each checkpoint follows what
// it records.
type emitFunc func(ctx context.Context, msgs ...pipeline.Message) error

// cut emits a segment's ranges from where it stands until the segment is
// done, the deliver backlog stays above the mark for MaxWait, or a capped
// campaign's allowance is spent (paced.go). Each batch of ranges is recorded
// in the checkpoint before it is emitted, and the segment advanced past it
// after (checkpoint.go).
func (h *Handler) cut(ctx context.Context, c campaign.Campaign, s *segment, emit emitFunc, allow *allowance) error {
	ckKey := h.cfg.Keys.SplitCheckpoint(c.ID)
	exp := campaign.CountersExpireMs(c.ExpiresAt().UnixMilli())
	for k := 1; !s.done; {
		if err := gone(c); err != nil {
			return err // the checkpoint would expire as it is written
		}
		if err := h.wait(ctx); err != nil {
			if errors.Is(err, errBackedUp) {
				return nil
			}
			return err
		}
		if canceled, err := h.cancels.Canceled(ctx, c.ID); err != nil || canceled {
			return err // canceled: no more ranges (Handle drops the campaign)
		}
		if len(s.pending) == 0 {
			if allow.spent() {
				return nil
			}
			k = allow.ranges(k, h.cfg.RangeSize)
			his, err := boundaries(ctx, h.cfg.DB, s.channel, s.lo, s.end, h.cfg.RangeSize, k)
			if err != nil {
				return fmt.Errorf("split %s channel %q: %w", c.ID, s.channel, err)
			}
			next := *s
			next.pending = ends(his, k, s.end)
			k = min(2*k, maxPerQuery)
			if ok, err := h.record(ctx, ckKey, exp, s, next); err != nil || !ok {
				if err != nil {
					return fmt.Errorf("split %s channel %q: checkpoint: %w", c.ID, s.channel, err)
				}
				continue // another splitter moved the segment: go on from there
			}
		}
		if err := emit(ctx, h.rangeMsgs(c.ID, s)...); err != nil {
			return fmt.Errorf("split %s channel %q: %w", c.ID, s.channel, err)
		}
		allow.spend(len(s.pending) * h.cfg.RangeSize)
		if _, err := h.record(ctx, ckKey, exp, s, s.advanced()); err != nil {
			return fmt.Errorf("split %s channel %q: checkpoint: %w", c.ID, s.channel, err)
		}
	}
	return nil
}

// ends are the ends of the ranges cut from boundaries his (up to k were
// asked for) in a segment ending at end: his up to end, then, when the
// segment ran out first, one last range to end that holds fewer than
// RangeSize subscribers.
func ends(his []int64, k int, end int64) []int64 {
	for i, hi := range his {
		if hi == end {
			return his[:i+1]
		}
	}
	if len(his) < k {
		return append(his, end)
	}
	return his
}

// rangeMsgs are the ranges entries of segment s's pending ranges.
func (h *Handler) rangeMsgs(id string, s *segment) []pipeline.Message {
	msgs := make([]pipeline.Message, len(s.pending))
	lo := s.lo
	for i, hi := range s.pending {
		rid := s.rangeID(s.next + i)
		msgs[i] = pipeline.Message{
			Stream: h.cfg.Keys.Stream(pipeline.StreamRanges, h.cfg.Keys.HashPartition(id+"/"+rid)),
			Fields: pipeline.RangeEntry{Campaign: id, Channel: s.channel, Range: rid, Lo: lo, Hi: hi}.Fields(),
		}
		lo = hi + 1 // hi < MaxInt64: only the last range can end there
	}
	return msgs
}

// boundaryQuery finds up to $5 range ends from $2 on, none past $3: each is
// the $4-th subscriber after the previous end, found by an index-only scan
// that skips $4-1 entries of the primary key. One round trip for many
// ranges.
const boundaryQuery = `
WITH RECURSIVE b(hi, n) AS (
	SELECT (SELECT user_id FROM subscriptions WHERE channel = $1 AND user_id >= $2 AND user_id <= $3
	        ORDER BY user_id OFFSET $4 - 1 LIMIT 1), 1
	UNION ALL
	SELECT (SELECT user_id FROM subscriptions WHERE channel = $1 AND user_id > b.hi AND user_id <= $3
	        ORDER BY user_id OFFSET $4 - 1 LIMIT 1), b.n + 1
	FROM b WHERE b.hi IS NOT NULL AND b.n < $5
)
SELECT hi FROM b WHERE hi IS NOT NULL ORDER BY n`

// boundaries returns up to k range ends (inclusive) of size subscribers each
// within [lo, end], the first range starting at lo; fewer when the segment
// runs out.
func boundaries(ctx context.Context, db *pgxpool.Pool, channel string, lo, end int64, size, k int) ([]int64, error) {
	rows, err := db.Query(ctx, boundaryQuery, channel, lo, end, size, k)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var hi int64
		if err := rows.Scan(&hi); err != nil {
			return nil, err
		}
		out = append(out, hi)
	}
	return out, rows.Err()
}
