package dedupe

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// A campaign's marks expire an hour after the campaign and after its last
// entry in the partition (campaign.MarksExpireMs), its counters a week after.
// An entry read once they are gone (a replay within the streams' retention,
// a dead letter retried, a split held back for over an hour) cannot be told
// from a repeat: forwarded, everyone in it would get the campaign again.
// Such an entry goes to the DLQ instead. The marks are gone when the
// partition counted ids in for the campaign but holds neither marks key:
// whoever was counted in left marks that live as long as the counters.

// lostMarks returns the campaigns among entries whose marks in partition p
// are gone. Only campaigns already expired are asked about (a round trip
// for them alone); the rest cannot have lost theirs.
func (h *Handler) lostMarks(ctx context.Context, p int, entries []entry, exps map[string]int64) (map[string]bool, error) {
	now := time.Now().UnixMilli()
	var camps []string
	var cmds rueidis.Commands
	c, keys := h.cfg.Redis, h.cfg.Keys
	seen := map[string]bool{}
	for _, en := range entries {
		if exps[en.campaign] >= now || seen[en.campaign] {
			continue
		}
		seen[en.campaign] = true
		camps = append(camps, en.campaign)
		cmds = append(cmds,
			c.B().Exists().Key(keys.Seen(p, en.campaign), keys.Muted(p, en.campaign)).Build(),
			c.B().Hget().Key(keys.Stats(p, en.campaign)).Field(pipeline.StatIn).Build())
	}
	if len(cmds) == 0 {
		return nil, nil
	}
	res := c.DoMulti(ctx, cmds...)
	lost := map[string]bool{}
	for i, id := range camps {
		marks, err := res[2*i].AsInt64()
		if err != nil {
			return nil, fmt.Errorf("marks of campaign %q: %w", id, err)
		}
		in, err := res[2*i+1].AsInt64()
		if err != nil && !rueidis.IsRedisNil(err) {
			return nil, fmt.Errorf("counters of campaign %q: %w", id, err)
		}
		lost[id] = marks == 0 && in > 0
	}
	return lost, nil
}

// errMarksLost is why an entry read after its campaign's marks expired is
// dead-lettered.
func errMarksLost(id string, expMs int64) error {
	return fmt.Errorf("campaign %q expired at %s and its dedupe marks with it: these users may have had it already "+
		"(a replay with --force sends it to them all the same)", id, time.UnixMilli(expMs).UTC().Format(time.RFC3339))
}
