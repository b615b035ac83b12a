package deliver

import (
	"context"
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
// rate_per_second.
type lifecycle struct {
	cancels *campaignrow.Cancels
	rates   campaignRates
}

func newLifecycle(rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys, log zerolog.Logger, late prometheus.Counter) *lifecycle {
	cancels := campaignrow.NewCancels(rdb, keys)
	cancels.DB = db // a cancel whose flag Redis lost is seen in its record
	return &lifecycle{
		cancels: cancels,
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

// campaignProvider names the campaign caps' schedules in
// Keys.RateLimit(campaignProvider, campaign id).
const campaignProvider = "campaign"

// campaignRates are the campaigns' own caps: one GCRA schedule per capped
// campaign, shared by every deliver process like the provider caps, taken
// before the provider's permit (a send needs both). A limiter is made per
// rate; its buckets are the campaigns of that rate.
type campaignRates struct {
	rdb  rueidis.Client
	keys pipeline.Keys
	log  zerolog.Logger
	late prometheus.Counter

	mu     sync.Mutex
	byRate map[int]*limiter
}

// wait blocks until one send of c may start under c's own cap (at once
// for an uncapped campaign).
func (cr *campaignRates) wait(ctx context.Context, c *campaign) error {
	if c.rate <= 0 {
		return nil
	}
	cr.mu.Lock()
	l := cr.byRate[c.rate]
	if l == nil {
		l = newLimiter(cr.rdb, cr.keys, pipeline.Bulk, c.rate, cr.log, cr.late)
		cr.byRate[c.rate] = l
	}
	cr.mu.Unlock()
	b := l.bucket(campaignProvider, c.ID)
	// A campaign's schedule is not a connection being opened: the provider
	// permit taken next does the warming up.
	b.warm.Store(true)
	return l.permit(ctx, b)
}
