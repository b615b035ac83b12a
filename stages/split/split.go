// Package split is the stage that cuts a campaign into ranges: for each of
// its channels, consecutive runs of about RangeSize subscribers, found on the
// subscriptions primary key (channel, user_id), so that resolve can read them
// in parallel. Ranges are cut by subscriber count, not by id span: sparse ids
// never make empty ranges. The first range of each channel goes out at once,
// so sending starts while the rest is still being cut.
package split

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/campaign"
)

// Config is what the stage needs.
type Config struct {
	Redis rueidis.Client
	DB    *pgxpool.Pool
	Keys  pipeline.Keys
	Log   zerolog.Logger
	// RangeSize is the number of subscribers per range; default 5000.
	RangeSize int
	// Parallel is how many channels of a campaign are cut at once; default 4.
	Parallel int
	// HighWater bounds the deliver stage's backlog (entries outstanding in
	// its group): past it, split stops emitting, so Redis holds a bounded
	// part of even a 100M-user campaign. 0 disables.
	HighWater int64
	// MaxWait is how long split waits for the backlog to go down before it
	// checkpoints, requeues the campaign and lets go of it (a handler that
	// held its entry longer than the claim idle time would be claimed
	// twice); default 10s.
	MaxWait time.Duration
}

// Handler is the split stage's batch handler.
type Handler struct{ cfg Config }

// New builds the handler.
func New(cfg Config) *Handler {
	if cfg.RangeSize <= 0 {
		cfg.RangeSize = 5000
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 4
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 10 * time.Second
	}
	return &Handler{cfg: cfg}
}

// Handle splits every campaign of the batch.
//
// Ranges are emitted as they are found (not queued on the batch), then the
// channel's checkpoint is recorded, and the runner acks the campaign entry
// last: a crash re-emits at most the ranges since the last checkpoint, with
// the same ids and bounds, which dedupe makes harmless.
func (h *Handler) Handle(ctx context.Context, b *pipeline.Batch) error {
	for i, e := range b.Entries {
		id := e.Fields[pipeline.FieldCampaign]
		if err := campaign.ValidateID(id); err != nil {
			b.DeadLetter(i, fmt.Errorf("field %s: %w", pipeline.FieldCampaign, err))
			continue
		}
		c, err := campaign.Load(ctx, h.cfg.DB, id)
		if errors.Is(err, campaign.ErrNotFound) {
			b.DeadLetter(i, err) // rows are written before their entry
			continue
		}
		if err != nil {
			return err
		}
		finished, err := h.split(ctx, c)
		if err != nil {
			return err
		}
		if !finished {
			// Downstream is full: continue later from the checkpoint.
			b.Emit(h.cfg.Keys.Stream(pipeline.StreamCampaigns, h.cfg.Keys.HashPartition(id)), pipeline.FieldCampaign, id)
		}
	}
	return nil
}

// checkpoint is where a channel's split stands: the next range's index and
// first id, or done with the channel's number of ranges.
type checkpoint struct {
	next int
	lo   int64
	done bool
}

func (c checkpoint) String() string {
	if c.done {
		return "done " + strconv.Itoa(c.next)
	}
	return strconv.Itoa(c.next) + " " + strconv.FormatInt(c.lo, 10)
}

func parseCheckpoint(s string) (checkpoint, bool) {
	a, b, ok := strings.Cut(s, " ")
	if !ok {
		return checkpoint{}, false
	}
	if a == "done" {
		n, err := strconv.Atoi(b)
		return checkpoint{next: n, done: true}, err == nil
	}
	n, err1 := strconv.Atoi(a)
	lo, err2 := strconv.ParseInt(b, 10, 64)
	return checkpoint{next: n, lo: lo}, err1 == nil && err2 == nil
}

// split cuts every channel of c from its checkpoint. It reports whether all
// are done; then it records split_done and ranges_total.
func (h *Handler) split(ctx context.Context, c campaign.Campaign) (bool, error) {
	rdb, keys := h.cfg.Redis, h.cfg.Keys
	ckKey := keys.CampaignKey(c.ID, campaign.KeySplit)
	saved, err := rdb.Do(ctx, rdb.B().Hgetall().Key(ckKey).Build()).AsStrMap()
	if err != nil {
		return false, fmt.Errorf("split %s: checkpoint: %w", c.ID, err)
	}
	var (
		mu    sync.Mutex
		total int
		all   = true
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(h.cfg.Parallel)
	for _, ch := range c.Channels {
		from, ok := parseCheckpoint(saved[ch])
		if !ok {
			from = checkpoint{next: 0, lo: 1} // user ids are positive
		}
		g.Go(func() error {
			at, err := h.channel(gctx, c, ch, from)
			mu.Lock()
			defer mu.Unlock()
			total += at.next
			all = all && at.done
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return false, err
	}
	if !all {
		return false, nil
	}
	exp := campaign.CountersExpireMs(c.ExpiresAt().UnixMilli())
	hash := keys.Campaign(c.ID)
	for _, res := range rdb.DoMulti(ctx,
		rdb.B().Hset().Key(hash).FieldValue().
			FieldValue(pipeline.CampaignRangesTotal, strconv.Itoa(total)).
			FieldValue(pipeline.CampaignSplitDone, "1").Build(),
		rdb.B().Pexpireat().Key(hash).MillisecondsTimestamp(exp).Build(),
	) {
		if err := res.Error(); err != nil {
			return false, fmt.Errorf("split %s: record done: %w", c.ID, err)
		}
	}
	return true, nil
}

// maxPerQuery caps the boundaries found per query. The first query finds
// one, so the first range goes out after a single index probe; the count
// doubles from there.
const maxPerQuery = 64

// channel cuts one channel from a checkpoint and returns where it stopped.
func (h *Handler) channel(ctx context.Context, c campaign.Campaign, channel string, at checkpoint) (checkpoint, error) {
	rdb, keys := h.cfg.Redis, h.cfg.Keys
	ckKey := keys.CampaignKey(c.ID, campaign.KeySplit)
	exp := campaign.CountersExpireMs(c.ExpiresAt().UnixMilli())
	bp := h.backpressure()
	for k := 1; !at.done; k = min(2*k, maxPerQuery) {
		if err := h.wait(ctx, bp); err != nil {
			if errors.Is(err, errBackedUp) {
				return at, nil
			}
			return at, err
		}
		his, err := boundaries(ctx, h.cfg.DB, channel, at.lo, h.cfg.RangeSize, k)
		if err != nil {
			return at, fmt.Errorf("split %s channel %q: %w", c.ID, channel, err)
		}
		var msgs []pipeline.Message
		next := at
		for _, hi := range his {
			msgs = append(msgs, h.rangeMsg(c.ID, channel, next.next, next.lo, hi))
			next.next++
			if hi == math.MaxInt64 {
				next.done = true
				break
			}
			next.lo = hi + 1
		}
		if len(his) < k && !next.done {
			// The rest holds fewer than RangeSize subscribers: one last
			// open-ended range, which also catches subscriptions added
			// while the campaign runs.
			msgs = append(msgs, h.rangeMsg(c.ID, channel, next.next, next.lo, math.MaxInt64))
			next.next++
			next.done = true
		}
		if _, err := pipeline.Emit(ctx, rdb, msgs...); err != nil {
			return at, fmt.Errorf("split %s channel %q: %w", c.ID, channel, err)
		}
		for _, res := range rdb.DoMulti(ctx,
			rdb.B().Hset().Key(ckKey).FieldValue().FieldValue(channel, next.String()).Build(),
			rdb.B().Pexpireat().Key(ckKey).MillisecondsTimestamp(exp).Build(),
		) {
			if err := res.Error(); err != nil {
				return at, fmt.Errorf("split %s channel %q: checkpoint: %w", c.ID, channel, err)
			}
		}
		at = next
	}
	return at, nil
}

// rangeMsg is a ranges entry. The range id (channel/index) is the same
// whenever the campaign is split again, so resolve's bookkeeping and
// dedupe's marks recognize it.
func (h *Handler) rangeMsg(id, channel string, index int, lo, hi int64) pipeline.Message {
	rid := channel + "/" + strconv.Itoa(index)
	return pipeline.Message{
		Stream: h.cfg.Keys.Stream(pipeline.StreamRanges, h.cfg.Keys.HashPartition(id+"/"+rid)),
		Fields: []string{
			pipeline.FieldCampaign, id, pipeline.FieldChannel, channel, pipeline.FieldRange, rid,
			pipeline.FieldLo, strconv.FormatInt(lo, 10), pipeline.FieldHi, strconv.FormatInt(hi, 10),
		},
	}
}

// boundaryQuery finds up to $4 range ends from $2 on: each is the $3-th
// subscriber after the previous end, found by an index-only scan that skips
// $3-1 entries of the primary key. One round trip for many ranges.
const boundaryQuery = `
WITH RECURSIVE b(hi, n) AS (
	SELECT (SELECT user_id FROM subscriptions WHERE channel = $1 AND user_id >= $2
	        ORDER BY user_id OFFSET $3 - 1 LIMIT 1), 1
	UNION ALL
	SELECT (SELECT user_id FROM subscriptions WHERE channel = $1 AND user_id > b.hi
	        ORDER BY user_id OFFSET $3 - 1 LIMIT 1), b.n + 1
	FROM b WHERE b.hi IS NOT NULL AND b.n < $4
)
SELECT hi FROM b WHERE hi IS NOT NULL ORDER BY n`

// boundaries returns up to k range ends (inclusive) of size subscribers each,
// the first range starting at lo; fewer when the channel runs out.
func boundaries(ctx context.Context, db *pgxpool.Pool, channel string, lo int64, size, k int) ([]int64, error) {
	rows, err := db.Query(ctx, boundaryQuery, channel, lo, size, k)
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
