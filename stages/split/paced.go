package split

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// A capped campaign (rate_per_second) goes out at its cap: deliver puts each
// of its entries off to the entry's slot on the campaign's schedule
// (stages/deliver/pace.go), where it waits in the deliver stream's delayed
// set, not in the stream. Split's backlog mark (HighWater) counts the
// stream's outstanding entries only, so it never saw them: cut as fast as
// PostgreSQL answers, a 100M-user campaign at 500/s was held in Redis whole,
// two days of sends waiting for their slots.
//
// So split cuts a capped campaign PacedAhead at a time. A call cuts at most
// the subscribers its cap sends in PacedAhead, then requeues the campaign
// (delayed), and a call whose campaign's schedule already reaches more than
// half of PacedAhead past now cuts nothing and comes back when it is half.
// Redis holds about PacedAhead of a capped campaign at a time, whatever its
// size. Requeued rather than waited for: the campaign's entry does not hold
// one of split's handlers for hours, and the other campaigns are cut
// meanwhile.
//
// The schedule moves when deliver reads the entries, after resolve and
// dedupe: it lags what split emitted. A call that spent its allowance comes
// back after half of PacedAhead (postPaced), long enough for the two stages
// to pass its ranges on even when they are slow, so split runs ahead of the
// schedule by about one allowance. Sooner would gain nothing: the schedule
// then reaches a whole PacedAhead past now, and the call would only wait.
// A quarter was too short on a loaded machine (CI under -race): the two
// stages took longer than that, the next call saw the schedule without the
// allowance just cut, and cut another; the drill counted almost five
// allowances cut ahead of the sends.
//
// The cap is the record's at each call (Handle reads the row): a rate
// changed while the campaign goes out (campaign.SetRate) sets what the
// next call cuts, and a cap removed lets the next call cut the rest.

// allowance is one split call's subscribers left to cut of a capped
// campaign, shared by its segments' cutters. A nil allowance (an uncapped
// campaign) is never spent.
type allowance struct{ left atomic.Int64 }

func (a *allowance) spent() bool { return a != nil && a.left.Load() <= 0 }

func (a *allowance) spend(n int) {
	if a != nil {
		a.left.Add(-int64(n))
	}
}

// ranges caps k, the ranges a query asks for, at the allowance left (at
// least one range: a cap below a range's worth still moves).
func (a *allowance) ranges(k, size int) int {
	if a == nil {
		return k
	}
	return max(1, min(k, int((a.left.Load()+int64(size)-1)/int64(size))))
}

// allowance is the call's allowance for campaign c, or how long to wait
// before cutting it when its schedule is far enough ahead.
//
// An expired campaign is cut at once: deliver fails its devices unsent
// (stages/deliver/expiry.go), and paced they would take as long to fail as
// they would have taken to send.
func (h *Handler) allowance(ctx context.Context, c campaign.Campaign) (*allowance, time.Duration, error) {
	if c.RatePerSecond <= 0 || h.cfg.PacedAhead <= 0 || !time.Now().Before(c.ExpiresAt()) {
		return nil, 0, nil
	}
	ahead, err := campaign.PacedAhead(ctx, h.cfg.Redis, h.cfg.Keys, c.ID)
	if err != nil {
		return nil, 0, err
	}
	if wait := ahead - h.cfg.PacedAhead/2; wait > 0 {
		return nil, max(wait, h.cfg.PacedAhead/4), nil
	}
	a := &allowance{}
	a.left.Store(max(1, int64(float64(c.RatePerSecond)*h.cfg.PacedAhead.Seconds())))
	return a, 0, nil
}

// postPaced is how long after spending its allowance a call comes back.
func (h *Handler) postPaced() time.Duration { return h.cfg.PacedAhead / 2 }
