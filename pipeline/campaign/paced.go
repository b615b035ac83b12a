package campaign

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// pacedAheadScript returns how many ms past Redis's now the schedule of the
// campaign whose hash is KEYS[1] reaches (field ARGV[1]), 0 when it is not
// past now or there is none. One call on the hash's node: its clock is the
// one deliver reserved by.
var pacedAheadScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paced = tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or 0
if paced <= now then return 0 end
return paced - now
`)

// PacedAhead is how far ahead of now a capped campaign's sends are already
// reserved: deliver's schedule of its entries (pipeline.CampaignPacedMs,
// stages/deliver/pace.go), each entry put off to its slot. 0 when nothing
// waits for its slot: an uncapped campaign, one whose sends keep up, or one
// not yet at deliver.
func PacedAhead(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, id string) (time.Duration, error) {
	ms, err := pacedAheadScript.Exec(ctx, rdb, []string{keys.Campaign(id)}, []string{pipeline.CampaignPacedMs}).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("campaign %s: paced schedule: %w", id, err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}
