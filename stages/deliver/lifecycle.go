package deliver

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	campaignrow "github.com/pushpipe/pushpipe/pipeline/campaign"
)

// lifecycle is what deliver does for a campaign's lifecycle: it stops
// sending a canceled campaign, and holds a campaign to its own
// rate_per_second, the one it has now: an operator may change it while it
// goes out (campaign.SetRate), and every deliver process follows within
// 1 s (current: campaign.RatePoll + its trust, as a cancel's flag).
type lifecycle struct {
	cancels *campaignrow.Cancels
	current *campaignrow.Rates
	rates   campaignRates
}

func newLifecycle(rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys, log zerolog.Logger, late prometheus.Counter) *lifecycle {
	cancels := campaignrow.NewCancels(rdb, keys)
	cancels.DB = db // a cancel whose flag Redis lost is seen in its record
	current := campaignrow.NewRates(rdb, keys)
	current.DB = db // a rate Redis lost is written back from its record
	return &lifecycle{
		cancels: cancels,
		current: current,
		rates:   campaignRates{rdb: rdb, keys: keys, log: log, late: late, idle: campaignIdle, caps: map[capKey]*campaignCap{}},
	}
}

// canceled reports whether c was canceled (campaign.Cancels.Canceled: as
// of CancelPoll ago while Redis keeps up, never on a flag read so long ago
// that a send would break the cancel's 1 s bound). A direct message cannot
// be canceled, and is not watched: at hundreds of messages a second the
// watcher's reads would outnumber the sends.
func (lc *lifecycle) canceled(ctx context.Context, c *campaign) (bool, error) {
	if c.message {
		return false, nil
	}
	return lc.cancels.Canceled(ctx, c.ID)
}

// rate is c's own cap now (0: none): the campaign hash's, which SetRate
// writes, or the row's when the hash has none (a campaign from before the
// field; Redis lost it, until the watcher's read of the records writes it
// again, within its RecordPoll, or a progress read does). A direct
// message has no cap of its own, and is not watched.
func (lc *lifecycle) rate(ctx context.Context, c *campaign) (int, error) {
	if c.message {
		return c.rate, nil
	}
	rate, ok, err := lc.current.Rate(ctx, c.ID)
	if err != nil {
		return 0, fmt.Errorf("campaign %s: read its rate: %w", c.ID, err)
	}
	if !ok {
		return c.rate, nil
	}
	return rate, nil
}

// wait blocks until one send of c may start under its own cap now (at
// once for an uncapped campaign).
func (lc *lifecycle) wait(ctx context.Context, c *campaign) error {
	rate, err := lc.rate(ctx, c)
	if err != nil {
		return err
	}
	return lc.rates.wait(ctx, c, rate)
}
