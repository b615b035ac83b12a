package campaign

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// statFields are read from every partition's keys.Stats hash, in this order.
var statFields = []string{
	pipeline.StatIn, pipeline.StatTargets, pipeline.StatMuted, pipeline.StatDups,
	pipeline.StatUsersDone, pipeline.StatSent, pipeline.StatFailed, pipeline.StatInvalid,
	pipeline.StatFirstMs, pipeline.StatLastMs, pipeline.StatDoneMs, pipeline.StatInReadings,
	pipeline.StatNoDevices, pipeline.StatDonePace, pipeline.StatUnsent,
}

// Counters sums a campaign's counters over the partitions, in one pipelined
// call, without PostgreSQL: for the readers that must work while it is
// down (status) or that sample often (the benchmark). Progress is the full
// report.
func Counters(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, id string) (Live, error) {
	ls, err := countersOf(ctx, rdb, keys, []string{id})
	if err != nil {
		return Live{}, err
	}
	return ls[0], nil
}

// countersOf is Counters of many campaigns in one pipelined call: a page of
// a list costs one round trip, not one per campaign.
func countersOf(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, ids []string) ([]Live, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	per := 3 + keys.Partitions
	cmds := make(rueidis.Commands, 0, per*len(ids))
	for _, id := range ids {
		cmds = append(cmds,
			rdb.B().Hmget().Key(keys.Campaign(id)).
				Field(pipeline.CampaignSplitDone, pipeline.CampaignRangesTotal, pipeline.CampaignFailed, HashExpiresMs,
					pipeline.CampaignAudience, HashMessageUsers, HashRatePerSecond).Build(),
			rdb.B().Hgetall().Key(keys.RangeUsers(id)).Build(),
			rdb.B().Get().Key(keys.Canceled(id)).Build(),
		)
		for p := range keys.Partitions {
			cmds = append(cmds, rdb.B().Hmget().Key(keys.Stats(p, id)).Field(statFields...).Build())
		}
	}
	res := rdb.DoMulti(ctx, cmds...)
	out := make([]Live, len(ids))
	for i, id := range ids {
		l, err := readCounters(id, res[i*per:(i+1)*per])
		if err != nil {
			return nil, err
		}
		out[i] = l
	}
	return out, nil
}

// readCounters sums one campaign's replies: its hash, its resolved ranges,
// its cancel flag, then its partitions' counters.
func readCounters(id string, res []rueidis.RedisResult) (Live, error) {
	var l Live
	for _, r := range res {
		if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) { // nil: no cancel flag
			return l, fmt.Errorf("progress of campaign %q: %w: %w", id, ErrRedis, err)
		}
	}
	head, _ := res[0].ToArray()
	l.SplitDone = intAt(head, 0) == 1
	rangesTotal := intAt(head, 1)
	if len(head) > 2 {
		l.FailReason, _ = head[2].ToString()
	}
	l.ExpiresMs = intAt(head, 3)
	l.Known = l.ExpiresMs > 0
	l.Audience = intAt(head, 4)
	l.Cut = len(head) > 4 && !head[4].IsNil()
	l.Message = len(head) > 5 && !head[5].IsNil()
	if len(head) > 6 && !head[6].IsNil() {
		l.Rate, l.RateKnown = int(intAt(head, 6)), true
	}
	resolved, _ := res[1].AsStrMap()
	var emitted int64
	for _, v := range resolved {
		emitted += pipeline.ParseRangeRecord(v).Users
	}
	if flag, err := res[2].ToString(); err == nil {
		l.Canceled = true
		// A flag set before it held the cancel's time holds "1".
		if ms, _ := strconv.ParseInt(flag, 10, 64); ms > 1 {
			l.CanceledMs = ms
		}
	}
	var in, inReadings int64
	parts := make([]partPace, 0, len(res)-3)
	for _, r := range res[3:] {
		vals, _ := r.ToArray()
		parts = append(parts, partPace{pace: strAt(vals, 13), firstMs: intAt(vals, 8), lastMs: intAt(vals, 10), done: intAt(vals, 4)})
		in += intAt(vals, 0)
		inReadings += intAt(vals, 11)
		l.Targets += intAt(vals, 1)
		l.Muted += intAt(vals, 2)
		l.DuplicatesSuppressed += intAt(vals, 3)
		l.UsersDone += intAt(vals, 4)
		l.Sent += intAt(vals, 5)
		l.Failed += intAt(vals, 6)
		l.InvalidTokens += intAt(vals, 7)
		if first := intAt(vals, 8); first > 0 && (l.FirstSendMs == 0 || first < l.FirstSendMs) {
			l.FirstSendMs = first
		}
		l.LastSendMs = max(l.LastSendMs, intAt(vals, 9))
		l.DoneMs = max(l.DoneMs, intAt(vals, 10))
		l.NoDevices += intAt(vals, 12)
		l.Unsent += intAt(vals, 14)
	}
	l.Pace = recentPace(parts, l.DoneMs)
	l.SplitBegan = len(resolved) > 0 || rangesTotal > 0 || l.Cut
	l.Waits = waitsOn(l.SplitDone, int64(len(resolved)) >= rangesTotal, in >= emitted)
	l.Holds = holdsOf(l.SplitDone, int64(len(resolved)) >= rangesTotal, in >= emitted, l.UsersDone >= l.Targets)
	switch {
	case !l.SplitDone:
		l.State = StateSplitting
	case int64(len(resolved)) >= rangesTotal && in >= emitted && l.UsersDone >= l.Targets:
		l.State = StateDone
		if inReadings == in {
			l.resolved = resolved // for confirmDone
		}
	default:
		l.State = StateRunning
	}
	return l, nil
}

// intAt is the integer at i of an HMGET reply, 0 when absent.
func intAt(vals []rueidis.RedisMessage, i int) int64 {
	n, _ := strconv.ParseInt(strAt(vals, i), 10, 64)
	return n
}

// strAt is the string at i of an HMGET reply, "" when absent.
func strAt(vals []rueidis.RedisMessage, i int) string {
	if i >= len(vals) {
		return ""
	}
	s, _ := vals[i].ToString()
	return s
}
