package split

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// A campaign's split checkpoint (keys.SplitCheckpoint(id))
// holds, per channel, the segment starts ("<channel>" → "s0 s1 ..."), and
// per segment where its cut stands ("<channel>#<i>" → "<next index> <next
// lo>" or "done <ranges>"). Segments are fixed once recorded, so a campaign
// delivered again (a crash, a requeue) resumes every segment where it was.

// segment is one part of a channel's id space, [start, end], and where its
// cut stands.
type segment struct {
	channel    string
	index      int
	start, end int64
	next       int   // the next range's index within the segment
	lo         int64 // the next range's first id
	done       bool
}

func (s *segment) field() string { return s.channel + "#" + strconv.Itoa(s.index) }

func (s *segment) state() string {
	if s.done {
		return "done " + strconv.Itoa(s.next)
	}
	return strconv.Itoa(s.next) + " " + strconv.FormatInt(s.lo, 10)
}

func (s *segment) restore(v string) bool {
	a, b, ok := strings.Cut(v, " ")
	if !ok {
		return false
	}
	if a == "done" {
		n, err := strconv.Atoi(b)
		s.next, s.done = n, true
		return err == nil
	}
	n, err1 := strconv.Atoi(a)
	lo, err2 := strconv.ParseInt(b, 10, 64)
	s.next, s.lo = n, lo
	return err1 == nil && err2 == nil
}

// rangeID is deterministic: the same segment cut again gives the same ids,
// so resolve's bookkeeping and dedupe's marks recognize a repeat. Channel
// names never hold '/'.
func (s *segment) rangeID(i int) string {
	return s.channel + "/" + strconv.Itoa(s.index) + "." + strconv.Itoa(i)
}

// split cuts every channel of c from its checkpoint. It reports whether all
// are done; then it records ranges_total and split_done.
func (h *Handler) split(ctx context.Context, c campaign.Campaign, emit emitFunc) (bool, error) {
	rdb, keys := h.cfg.Redis, h.cfg.Keys
	ckKey := keys.SplitCheckpoint(c.ID)
	saved, err := rdb.Do(ctx, rdb.B().Hgetall().Key(ckKey).Build()).AsStrMap()
	if err != nil {
		return false, fmt.Errorf("split %s: checkpoint: %w", c.ID, err)
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
		return false, err
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
				err := h.cut(gctx, c, s, emit)
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

// plan returns a channel's segments: the recorded ones, or new ones. A
// channel whose ids span fewer than Segments×RangeSize values is one
// segment; a larger one is cut into Segments equal id spans (each will hold
// many ranges, or a few short ones if the ids are sparse: never more than
// Segments-1 extra ranges per channel). The first segment starts at 1 and
// the last ends at MaxInt64, so subscriptions added while the campaign runs
// are inside one.
func (h *Handler) plan(ctx context.Context, c campaign.Campaign, channel string, saved map[string]string) ([]*segment, error) {
	var starts []int64
	if v, ok := saved[channel]; ok {
		for _, f := range strings.Fields(v) {
			n, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				starts = nil
				break
			}
			starts = append(starts, n)
		}
	}
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
		rdb := h.cfg.Redis
		ckKey := h.cfg.Keys.SplitCheckpoint(c.ID)
		for _, res := range rdb.DoMulti(ctx,
			rdb.B().Hset().Key(ckKey).FieldValue().FieldValue(channel, strings.Join(v, " ")).Build(),
			rdb.B().Pexpireat().Key(ckKey).MillisecondsTimestamp(campaign.CountersExpireMs(c.ExpiresAt().UnixMilli())).Build(),
		) {
			if err := res.Error(); err != nil {
				return nil, fmt.Errorf("split %s channel %q: checkpoint: %w", c.ID, channel, err)
			}
		}
	}
	segs := make([]*segment, len(starts))
	for i, start := range starts {
		end := int64(math.MaxInt64)
		if i+1 < len(starts) {
			end = starts[i+1] - 1
		}
		s := &segment{channel: channel, index: i, start: start, end: end, lo: start}
		if v, ok := saved[s.field()]; !ok || !s.restore(v) {
			s.next, s.lo, s.done = 0, start, false
		}
		segs[i] = s
	}
	return segs, nil
}
