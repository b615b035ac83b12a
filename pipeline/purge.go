package pipeline

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Purger deletes rows past a retention horizon, now and every Every until
// its context ends: ingest's tombstones, the API's direct messages. A pass
// is rounds of at most Round rows, each its own short statement (few locks,
// no long snapshot), until one deletes less than Round or Rounds have run:
// a first pass over years of rows spreads over several passes instead of
// taking the pool.
type Purger struct {
	What   string // what is purged, for the logs: "tombstones"
	Flag   string // the flag that sets the horizon, for the logs: "--keep-tombstones"
	Every  time.Duration
	Round  int
	Rounds int
	// Purge deletes at most limit rows past the horizon as of now and
	// returns how many it deleted.
	Purge  func(ctx context.Context, limit int) (int64, error)
	Purged prometheus.Counter // nil: not counted
	Log    zerolog.Logger
}

// Run purges until ctx ends; it returns nil then.
func (p Purger) Run(ctx context.Context) error {
	t := time.NewTicker(p.Every)
	defer t.Stop()
	for {
		p.pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (p Purger) pass(ctx context.Context) {
	var total int64
	for range p.Rounds {
		n, err := p.Purge(ctx, p.Round)
		total += n
		if err != nil {
			if ctx.Err() == nil {
				p.Log.Warn().Err(err).Str("purge", p.What).Dur("next_in", p.Every).Msg("purge failed; it is tried again")
			}
			break
		}
		if n < int64(p.Round) {
			break
		}
	}
	if p.Purged != nil {
		p.Purged.Add(float64(total))
	}
	if total > 0 {
		p.Log.Info().Int64(p.What, total).Msg("purged " + p.What + " past " + p.Flag)
	}
}
