// Package split is the stage that cuts a campaign into ranges: for each of
// its channels, consecutive runs of RangeSize subscribers, found on the
// subscriptions primary key (channel, user_id), so that resolve can read them
// in parallel. Ranges are cut by subscriber count, not by id span: sparse ids
// never make empty ranges. A large channel's id space is first divided into
// a few segments cut concurrently (each ends with one shorter range). The
// first range of each segment goes out after a single index probe, so
// sending starts while the rest is still being cut.
package split

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// Config is what the stage needs.
type Config struct {
	Redis rueidis.Client
	DB    *pgxpool.Pool
	Keys  pipeline.Keys
	Log   zerolog.Logger
	// RangeSize is the number of subscribers per range; default 5000.
	RangeSize int
	// Segments is how many parts of its id space a large channel is cut in
	// at once, so that one channel's split is not one sequential walk of
	// its index; default 4.
	Segments int
	// Parallel is how many segments (of all channels) are cut at once, each
	// holding a database connection; default 4.
	Parallel int
	// HighWater bounds the deliver stage's backlog (entries outstanding in
	// its group): past it, split stops emitting, so Redis holds a bounded
	// part of even a 100M-user campaign. 0 disables.
	HighWater int64
	// MaxWait is how long split waits for the backlog to go down before it
	// checkpoints, requeues the campaign and lets go of it (a handler that
	// held its entry longer than the claim idle time would be claimed
	// twice); default 10s.
	MaxWait time.Duration
	// PacedAhead is how much of a capped campaign's sending split cuts
	// ahead of its schedule (paced.go); default 1 minute, negative
	// disables.
	PacedAhead time.Duration
}

// Handler is the split stage's batch handler.
type Handler struct {
	cfg     Config
	backlog backlog
	cancels *campaign.Cancels
}

// New builds the handler.
func New(cfg Config) *Handler {
	if cfg.RangeSize <= 0 {
		cfg.RangeSize = 5000
	}
	if cfg.Segments <= 0 {
		cfg.Segments = 4
	}
	cfg.Segments = min(cfg.Segments, cfg.RangeSize) // segments hold at least a range's worth of ids
	if cfg.Parallel <= 0 {
		cfg.Parallel = 4
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 10 * time.Second
	}
	if cfg.PacedAhead == 0 {
		cfg.PacedAhead = time.Minute
	}
	return &Handler{cfg: cfg, cancels: campaign.NewCancels(cfg.Redis, cfg.Keys)}
}

// Handle splits every campaign of the batch.
//
// Ranges are recorded in the segment's checkpoint, then emitted (not queued
// on the batch), then the checkpoint moves past them, and the runner acks
// the campaign entry last: a crash re-emits at most the ranges recorded
// since the last move, with the same ids and bounds (resolve reads a
// repeated range again), which dedupe makes harmless.
func (h *Handler) Handle(ctx context.Context, b *pipeline.Batch) error {
	for i, e := range b.Entries {
		id := e.Fields[pipeline.FieldCampaign]
		if err := campaign.ValidateID(id); err != nil {
			b.DeadLetter(i, pipeline.BadInput(fmt.Errorf("field %s: %w", pipeline.FieldCampaign, err)))
			continue
		}
		c, err := campaign.Load(ctx, h.cfg.DB, id)
		if errors.Is(err, campaign.ErrNotFound) {
			b.DeadLetter(i, err) // rows are written before their entry
			continue
		}
		if err != nil {
			return err
		}
		if err := gone(c); err != nil {
			b.DeadLetter(i, err)
			continue
		}
		if ok, err := h.starts(ctx, c); err != nil || !ok {
			if err != nil {
				return err
			}
			continue // canceled: dropped (acked) unsplit
		}
		finished, after, err := h.split(ctx, c, b.EmitNow)
		if errors.Is(err, errGone) {
			b.DeadLetter(i, err)
			continue
		}
		if err != nil {
			return err
		}
		if canceled, err := h.cancels.Canceled(ctx, id); err != nil || canceled {
			if err != nil {
				return err
			}
			continue
		}
		if !finished {
			if err := h.countAudience(ctx, c); err != nil {
				return err
			}
			// Downstream is full, or a capped campaign is cut far enough
			// ahead of its sends: continue later from the checkpoint.
			b.EmitAt(time.Now().Add(after), h.cfg.Keys.Stream(pipeline.StreamCampaigns, h.cfg.Keys.HashPartition(id)), pipeline.FieldCampaign, id)
		}
	}
	return nil
}

// starts reports whether campaign c is to be split, and records that it
// started (a scheduled campaign released by its delayed entry): not when it
// was canceled, by PostgreSQL's state or by its flag.
func (h *Handler) starts(ctx context.Context, c campaign.Campaign) (bool, error) {
	if campaign.Final(c.State) {
		// A canceled one's flag may be lost, and the stages after this
		// one read nothing else: set it again.
		return false, campaign.KeepCanceled(ctx, h.cfg.Redis, h.cfg.Keys, c)
	}
	if canceled, err := h.cancels.Canceled(ctx, c.ID); err != nil || canceled {
		return false, err
	}
	return campaign.Start(ctx, h.cfg.DB, c.ID)
}

// errGone is a campaign whose Redis state is due to be gone: its
// checkpoint, counters and expiry are kept a week after it expired
// (campaign.KeepCounters). Cut then, every checkpoint write would expire as
// it is written, and dedupe refuses a campaign whose expiry Redis no longer
// holds: it is dead-lettered, not cut.
var errGone = errors.New("its Redis state is kept a week after it expires, and is gone")

// gone is errGone for campaign c when its Redis state is due to be gone.
func gone(c campaign.Campaign) error {
	exp := c.ExpiresAt()
	if time.Now().UnixMilli() < campaign.CountersExpireMs(exp.UnixMilli()) {
		return nil
	}
	return fmt.Errorf("campaign %q expired at %s: %w", c.ID, exp.UTC().Format(time.RFC3339), errGone)
}
