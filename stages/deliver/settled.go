package deliver

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// settledKey is a campaign's set, in partition p, of the users counted done
// and the devices counted failed after their user's last retry (see
// settledScript). It shares the partition's hash tag with the sent marks.
func (h *Handler) settledKey(p int, campaign string) string {
	return h.keys.Settled(p, campaign)
}

// countSettled adds users that became terminal to users_done and the
// devices of users out of retries to failed, each once ever (see
// settledScript). It runs before the round is acked: a crash in between
// redoes the round, which then counts nothing twice.
func (h *Handler) countSettled(ctx context.Context, p int, targets []target, s settlement) error {
	type settled struct {
		users  []int64
		bare   []int64 // those of users with no device
		failed []markReq
	}
	byCampaign := map[*campaign]*settled{}
	for i, t := range targets {
		if s.done[i] == 0 {
			continue
		}
		c := byCampaign[t.c]
		if c == nil {
			c = &settled{}
			byCampaign[t.c] = c
		}
		if s.bare[i] {
			c.bare = append(c.bare, h.doneIndex(t.c, t.user))
		} else {
			c.users = append(c.users, h.doneIndex(t.c, t.user))
		}
		for _, d := range s.failed[i] {
			c.failed = append(c.failed, markReq{d: d, outcome: push.Failed, reason: cmp.Or(s.reasons[i], "unknown")})
		}
	}
	for c, set := range byCampaign {
		sent := h.sentMarks(p, c)
		keys := newScriptKeys(h.keys.Stats(p, c.ID), h.settledKey(p, c.ID), h.keys.Stream(pipeline.StreamResults, p), h.keys.Reasons(p, c.ID))
		slices.Sort(set.users)
		slices.Sort(set.bare)
		slices.SortFunc(set.failed, func(a, b markReq) int {
			return cmp.Or(cmp.Compare(countedReason(a.d.platform, a.reason), countedReason(b.d.platform, b.reason)), cmp.Compare(a.d.id, b.d.id))
		})
		paceEvery := h.cfg.donePaceEvery.Milliseconds()
		if c.message {
			paceEvery = -1 // its 30 bytes a partition would buy nothing
		}
		args := []string{strconv.FormatInt(int64(marksTTL(c)/time.Second), 10), "", "", "0", strconv.FormatInt(paceEvery, 10)}
		if !h.cfg.NoResults && len(set.failed) > 0 {
			args = append(args, c.resultHeader(time.Now().UnixMilli())...)
			args = append(args, pipeline.FieldEvents, recordsArg(resultRecords(set.failed, nil)))
			args[3] = strconv.Itoa(len(args) - 5)
		}
		var groups int
		args, groups = appendMasks(args, set.users, h.doneMarks(p, c), keys.index)
		args[1] = strconv.Itoa(groups)
		args, groups = appendMasks(args, set.bare, h.doneMarks(p, c), keys.index)
		args[2] = strconv.Itoa(groups)
		ids := make([]int64, 0, len(set.failed))
		for i := 0; i < len(set.failed); {
			j := i
			ids = ids[:0]
			reason := countedReason(set.failed[i].d.platform, set.failed[i].reason)
			for ; j < len(set.failed) && countedReason(set.failed[j].d.platform, set.failed[j].reason) == reason; j++ {
				ids = append(ids, set.failed[j].d.id)
			}
			args = append(args, reason, "")
			at := len(args) - 1
			args, groups = appendGroups(args, ids, sent, keys.index)
			args[at] = strconv.Itoa(groups)
			i = j
		}
		written, err := settledScript.Exec(ctx, h.rdb, keys.keys, args).AsInt64()
		if err != nil {
			if mayPass(err) {
				h.outages.seen(p) // marks written before may be lost: marksgone.go
			}
			return fmt.Errorf("count settled users of %s: %w", c.ID, err)
		}
		h.metrics.eventsWritten(push.Failed, written)
	}
	return nil
}
