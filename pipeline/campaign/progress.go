package campaign

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// States of a campaign.
const (
	StateSplitting = "splitting" // split has not emitted every range yet
	StateRunning   = "running"
	StateDone      = "done" // every target reached a terminal state
)

// Report is DESIGN's progress object. Targets, Muted and
// DuplicatesSuppressed count people; Sent, Failed and InvalidTokens count
// devices. The send times are unix ms, 0 before the first send.
type Report struct {
	ID                   string `json:"id"`
	State                string `json:"state"`
	Targets              int64  `json:"targets"`
	Sent                 int64  `json:"sent"`
	Failed               int64  `json:"failed"`
	Muted                int64  `json:"muted"`
	InvalidTokens        int64  `json:"invalid_tokens"`
	DuplicatesSuppressed int64  `json:"duplicates_suppressed"`
	FirstSendMs          int64  `json:"first_send_ms"`
	LastSendMs           int64  `json:"last_send_ms"`
	// Error is why the campaign failed as a whole (deliver could not render
	// or authenticate it), if it did.
	Error string `json:"error,omitempty"`
}

// statFields are read from every partition's keys.Stats hash, in this order.
var statFields = []string{
	pipeline.StatIn, pipeline.StatTargets, pipeline.StatMuted, pipeline.StatDups,
	pipeline.StatUsersDone, pipeline.StatSent, pipeline.StatFailed, pipeline.StatInvalid,
	pipeline.StatFirstMs, pipeline.StatLastMs,
}

// Progress reports a campaign's state and counters: ErrNotFound for an id that
// was never created. Counters are summed over the partitions in one pipelined
// call.
//
// A campaign is done when split emitted every range, resolve recorded every
// range, dedupe read at least as many ids as resolve emitted (it counts
// repeats too, so redeliveries can only make it larger), and deliver brought
// every target to a terminal state.
func Progress(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys, id string) (Report, error) {
	rep := Report{ID: id, State: StateSplitting}
	if _, err := Load(ctx, db, id); err != nil {
		return rep, err
	}
	cmds := make(rueidis.Commands, 0, 2+keys.Partitions)
	cmds = append(cmds,
		rdb.B().Hmget().Key(keys.Campaign(id)).
			Field(pipeline.CampaignSplitDone, pipeline.CampaignRangesTotal, pipeline.CampaignFailed).Build(),
		rdb.B().Hvals().Key(keys.RangeUsers(id)).Build(),
	)
	for p := range keys.Partitions {
		cmds = append(cmds, rdb.B().Hmget().Key(keys.Stats(p, id)).Field(statFields...).Build())
	}
	res := rdb.DoMulti(ctx, cmds...)
	for _, r := range res {
		if err := r.Error(); err != nil {
			return rep, fmt.Errorf("progress of campaign %q: %w", id, err)
		}
	}
	head, _ := res[0].ToArray()
	splitDone := intAt(head, 0) == 1
	rangesTotal := intAt(head, 1)
	if len(head) > 2 {
		rep.Error, _ = head[2].ToString()
	}
	resolved, _ := res[1].AsStrSlice()
	var emitted int64
	for _, v := range resolved {
		n, _ := strconv.ParseInt(v, 10, 64)
		emitted += n
	}
	var in, usersDone int64
	for _, r := range res[2:] {
		vals, _ := r.ToArray()
		in += intAt(vals, 0)
		rep.Targets += intAt(vals, 1)
		rep.Muted += intAt(vals, 2)
		rep.DuplicatesSuppressed += intAt(vals, 3)
		usersDone += intAt(vals, 4)
		rep.Sent += intAt(vals, 5)
		rep.Failed += intAt(vals, 6)
		rep.InvalidTokens += intAt(vals, 7)
		if first := intAt(vals, 8); first > 0 && (rep.FirstSendMs == 0 || first < rep.FirstSendMs) {
			rep.FirstSendMs = first
		}
		rep.LastSendMs = max(rep.LastSendMs, intAt(vals, 9))
	}
	switch {
	case !splitDone:
		rep.State = StateSplitting
	case int64(len(resolved)) >= rangesTotal && in >= emitted && usersDone >= rep.Targets:
		rep.State = StateDone
	default:
		rep.State = StateRunning
	}
	return rep, nil
}

// intAt is the integer at i of an HMGET reply, 0 when absent.
func intAt(vals []rueidis.RedisMessage, i int) int64 {
	if i >= len(vals) {
		return 0
	}
	s, err := vals[i].ToString()
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
