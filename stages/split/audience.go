package split

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// A campaign's targets are counted as its ranges are resolved, so while
// split is still cutting it they are those of the ranges cut so far: a
// capped campaign cut a minute ahead of its sends (paced.go), or a large one
// held back by deliver's backlog, would show nearly all of its few targets
// done and an end a minute away for hours. When a call leaves a campaign
// unfinished, split counts its channels' subscribers once, for its progress
// to go by until every range is out (campaign.Report.Expected). One
// index-only count per channel, on a campaign that takes minutes or more.

// setAudience writes ARGV[2] to field ARGV[1] of the campaign hash KEYS[1]
// unless it is there; never to a hash that expired (it would not expire
// again).
var setAudience = rueidis.NewLuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
`)

// countAudience records the subscribers of c's channels in its hash
// (pipeline.CampaignAudience) unless they were counted.
func (h *Handler) countAudience(ctx context.Context, c campaign.Campaign) error {
	rdb, key := h.cfg.Redis, h.cfg.Keys.Campaign(c.ID)
	had, err := rdb.Do(ctx, rdb.B().Hexists().Key(key).Field(pipeline.CampaignAudience).Build()).AsBool()
	if err != nil || had {
		if err != nil {
			return fmt.Errorf("split %s: audience: %w", c.ID, err)
		}
		return nil
	}
	var n int64
	if err := h.cfg.DB.QueryRow(ctx, `SELECT count(*) FROM subscriptions WHERE channel = ANY($1) AND user_id > 0`,
		c.Channels).Scan(&n); err != nil {
		return fmt.Errorf("split %s: count its audience: %w", c.ID, err)
	}
	err = setAudience.Exec(ctx, rdb, []string{key}, []string{pipeline.CampaignAudience, strconv.FormatInt(n, 10)}).Error()
	if err != nil {
		return fmt.Errorf("split %s: audience: %w", c.ID, err)
	}
	return nil
}
