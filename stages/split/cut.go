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

// cut emits a segment's ranges from where it stands, recording its progress
// after each batch of ranges, until the segment is done or the deliver
// backlog stays above the mark for MaxWait.
func (h *Handler) cut(ctx context.Context, c campaign.Campaign, s *segment, emit emitFunc) error {
	rdb, keys := h.cfg.Redis, h.cfg.Keys
	ckKey := keys.SplitCheckpoint(c.ID)
	exp := campaign.CountersExpireMs(c.ExpiresAt().UnixMilli())
	for k := 1; !s.done; k = min(2*k, maxPerQuery) {
		if err := h.wait(ctx); err != nil {
			if errors.Is(err, errBackedUp) {
				return nil
			}
			return err
		}
		if canceled, err := h.cancels.Canceled(ctx, c.ID); err != nil || canceled {
			return err // canceled: no more ranges (Handle drops the campaign)
		}
		his, err := boundaries(ctx, h.cfg.DB, s.channel, s.lo, s.end, h.cfg.RangeSize, k)
		if err != nil {
			return fmt.Errorf("split %s channel %q: %w", c.ID, s.channel, err)
		}
		next := *s
		var msgs []pipeline.Message
		for _, hi := range his {
			msgs = append(msgs, h.rangeMsg(c.ID, &next, hi))
			if hi == next.end {
				next.done = true
				break
			}
			next.lo = hi + 1
		}
		if len(his) < k && !next.done {
			// The rest of the segment holds fewer than RangeSize
			// subscribers: one last range to its end.
			msgs = append(msgs, h.rangeMsg(c.ID, &next, next.end))
			next.done = true
		}
		if err := emit(ctx, msgs...); err != nil {
			return fmt.Errorf("split %s channel %q: %w", c.ID, s.channel, err)
		}
		for _, res := range rdb.DoMulti(ctx,
			rdb.B().Hset().Key(ckKey).FieldValue().FieldValue(next.field(), next.state()).Build(),
			rdb.B().Pexpireat().Key(ckKey).MillisecondsTimestamp(exp).Build(),
		) {
			if err := res.Error(); err != nil {
				return fmt.Errorf("split %s channel %q: checkpoint: %w", c.ID, s.channel, err)
			}
		}
		*s = next
	}
	return nil
}

// rangeMsg is the ranges entry [s.lo, hi] of segment s, and advances s.next.
func (h *Handler) rangeMsg(id string, s *segment, hi int64) pipeline.Message {
	rid := s.rangeID(s.next)
	s.next++
	return pipeline.Message{
		Stream: h.cfg.Keys.Stream(pipeline.StreamRanges, h.cfg.Keys.HashPartition(id+"/"+rid)),
		Fields: pipeline.RangeEntry{Campaign: id, Channel: s.channel, Range: rid, Lo: s.lo, Hi: hi}.Fields(),
	}
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
