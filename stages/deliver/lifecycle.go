package deliver

import (
	"context"
	"fmt"
	"sync"

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
		rates:   campaignRates{rdb: rdb, keys: keys, log: log, late: late, byRate: map[int]*limiter{}},
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
// again, within campaign's recordPoll, or a progress read does). A direct
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

// campaignProvider names the campaign caps' schedules in
// Keys.RateLimit(campaignProvider, campaign id).
const campaignProvider = "campaign"

// campaignRates are the campaigns' own caps: one GCRA schedule per capped
// campaign, shared by every deliver process like the provider caps, taken
// before the provider's permit (a send needs both). A limiter is made per
// rate; its buckets are the campaigns of that rate. A campaign whose rate
// changed takes its permits from the new rate's limiter, on the same
// schedule in Redis (the bucket's key is the campaign's, whatever the
// rate): its next slot is where the old rate left it, at most a few
// permits' ahead (the limiter's ahead), and the ones after it are the new
// rate's interval apart. Lowered, it does not burst; raised, it does not
// wait out the old rate's schedule. The permits the old limiter's bucket
// had granted this process and not used are left (they lapse).
type campaignRates struct {
	rdb  rueidis.Client
	keys pipeline.Keys
	log  zerolog.Logger
	late prometheus.Counter

	mu     sync.Mutex
	byRate map[int]*limiter
}

// wait blocks until one send of c may start under the cap rate (at once
// for none, 0).
func (cr *campaignRates) wait(ctx context.Context, c *campaign, rate int) error {
	if rate <= 0 {
		return nil
	}
	cr.mu.Lock()
	l := cr.byRate[rate]
	if l == nil {
		l = newLimiter(cr.rdb, cr.keys, pipeline.Bulk, rate, cr.log, cr.late)
		cr.byRate[rate] = l
	}
	cr.mu.Unlock()
	b := l.bucket(campaignProvider, c.ID)
	// A campaign's schedule is not a connection being opened: the provider
	// permit taken next does the warming up.
	b.warm.Store(true)
	return l.permit(ctx, b)
}
