package split

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// A campaign's split checkpoint (keys.SplitCheckpoint(id))
// holds, per channel, the segment starts ("<channel>" → "s0 s1 ..."), and
// per segment where its cut stands (checkpoint.go). Segments are fixed once
// recorded (the first splitter's plan wins), so a campaign delivered again
// (a crash, a requeue) resumes every segment where it was.

// segment is one part of a channel's id space, [start, end], and where its
// cut stands.
type segment struct {
	channel    string
	index      int
	start, end int64
	next       int     // the next range's index within the segment
	lo         int64   // the next range's first id
	pending    []int64 // the ends of the ranges recorded from lo, not known to be emitted
	done       bool
	raw        string // the checkpoint's value this state was read from or written as ("" absent)
}

func (s *segment) field() string { return s.channel + "#" + strconv.Itoa(s.index) }

// rangeID is deterministic: the same segment cut again gives the same ids
// for the same bounds (checkpoint.go), so resolve's bookkeeping and dedupe's
// marks recognize a repeat. Channel names never hold '/'.
func (s *segment) rangeID(i int) string {
	return s.channel + "/" + strconv.Itoa(s.index) + "." + strconv.Itoa(i)
}

// split cuts every channel of c from its checkpoint. It reports whether all
// are done (then it records ranges_total and split_done), and if not, after
// how long to go on.
func (h *Handler) split(ctx context.Context, c campaign.Campaign, emit emitFunc) (bool, time.Duration, error) {
	rdb, keys := h.cfg.Redis, h.cfg.Keys
	allow, wait, err := h.allowance(ctx, c)
	if err != nil || wait > 0 {
		return false, wait, err
	}
	ckKey := keys.SplitCheckpoint(c.ID)
	saved, err := rdb.Do(ctx, rdb.B().Hgetall().Key(ckKey).Build()).AsStrMap()
	if err != nil {
		return false, 0, fmt.Errorf("split %s: checkpoint: %w", c.ID, err)
	}
	// Plan every channel's segments first (two index probes each), then cut
	// segment 0 of every channel, then segment 1...: each channel's first
	// range goes out early.
	plans := make([][]*segment, len(c.Channels))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(h.cfg.Parallel)
	for i, ch := range c.Channels {
		g.Go(func() (err error) {
			plans[i], err = h.plan(gctx, c, ch, saved)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return false, 0, err
	}
	var (
		mu    sync.Mutex
		total int
		all   = true
	)
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(h.cfg.Parallel)
	for round := 0; ; round++ {
		more := false
		for _, segs := range plans {
			if round >= len(segs) {
				continue
			}
			more = true
			s := segs[round]
			g.Go(func() error {
				err := h.cut(gctx, c, s, emit, allow)
				mu.Lock()
				defer mu.Unlock()
				total += s.next
				all = all && s.done
				return err
			})
		}
		if !more {
			break
		}
	}
	if err := g.Wait(); err != nil {
		return false, 0, err
	}
	if !all {
		if allow.spent() {
			return false, h.postPaced(), nil
		}
		return false, 0, nil
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
			return false, 0, fmt.Errorf("split %s: record done: %w", c.ID, err)
		}
	}
	return true, 0, nil
}

// plan returns a channel's segments: the recorded ones, or new ones. A
// channel whose ids span fewer than Segments×RangeSize values is one
// segment; a larger one is cut into Segments equal id spans (each will hold
// many ranges, or a few short ones if the ids are sparse: never more than
// Segments-1 extra ranges per channel). The first segment starts at 1 and
// the last ends at MaxInt64, so subscriptions added while the campaign runs
// are inside one.
func (h *Handler) plan(ctx context.Context, c campaign.Campaign, channel string, saved map[string]string) ([]*segment, error) {
	starts := parseStarts(saved[channel])
	if len(starts) == 0 {
		var lo, hi *int64
		err := h.cfg.DB.QueryRow(ctx, `SELECT min(user_id), max(user_id) FROM subscriptions WHERE channel = $1 AND user_id > 0`,
			channel).Scan(&lo, &hi)
		if err != nil {
			return nil, fmt.Errorf("split %s channel %q: %w", c.ID, channel, err)
		}
		starts = []int64{1}
		k := int64(h.cfg.Segments)
		if lo != nil && k > 1 && *hi-*lo >= k*int64(h.cfg.RangeSize) {
			step := uint64(*hi-*lo)/uint64(k) + 1 // no overflow even for ids up to MaxInt64
			for i := int64(1); i < k; i++ {
				starts = append(starts, *lo+int64(step*uint64(i)))
			}
		}
		v := make([]string, len(starts))
		for i, s := range starts {
			v[i] = strconv.FormatInt(s, 10)
		}
		// The first plan recorded wins: two splitters of the campaign at
		// once (a replay beside a requeue) may have seen other
		// subscribers, and segment i must be the same ids for both.
		rdb := h.cfg.Redis
		ckKey := h.cfg.Keys.SplitCheckpoint(c.ID)
		res := rdb.DoMulti(ctx,
			rdb.B().Hsetnx().Key(ckKey).Field(channel).Value(strings.Join(v, " ")).Build(),
			rdb.B().Pexpireat().Key(ckKey).MillisecondsTimestamp(campaign.CountersExpireMs(c.ExpiresAt().UnixMilli())).Build(),
			rdb.B().Hget().Key(ckKey).Field(channel).Build(),
		)
		for _, r := range res {
			if err := r.Error(); err != nil {
				return nil, fmt.Errorf("split %s channel %q: checkpoint: %w", c.ID, channel, err)
			}
		}
		won, _ := res[2].ToString()
		if starts = parseStarts(won); len(starts) == 0 {
			return nil, fmt.Errorf("split %s channel %q: checkpoint holds %q, not segment starts", c.ID, channel, won)
		}
	}
	segs := make([]*segment, len(starts))
	for i, start := range starts {
		end := int64(math.MaxInt64)
		if i+1 < len(starts) {
			end = starts[i+1] - 1
		}
		s := &segment{channel: channel, index: i, start: start, end: end}
		s.reset(saved[s.field()])
		segs[i] = s
	}
	return segs, nil
}

// parseStarts reads a channel's recorded segment starts: nil unless they
// are ascending from 1.
func parseStarts(v string) []int64 {
	var starts []int64
	for _, f := range strings.Fields(v) {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || len(starts) == 0 && n != 1 || len(starts) > 0 && n <= starts[len(starts)-1] {
			return nil
		}
		starts = append(starts, n)
	}
	return starts
}
