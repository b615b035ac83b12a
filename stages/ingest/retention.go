package ingest

import (
	"context"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// Retention of tombstones. A deleted or invalidated device stays in the
// table as a tombstone, so that a registration older than the deletion,
// applied later (a replay, a redelivery, a dead letter retried), cannot
// bring the device back. That protection is needed only as long as such a
// registration can still arrive: past KeepTombstones, ingest drops
// registrations (see Handle) and purges the tombstones, which otherwise
// grow the table by every uninstalled app forever (FCM rotates tokens, so a
// large app invalidates millions a month).
const (
	// MinKeepTombstones bounds --keep-tombstones from below: a registration
	// is accepted by the API at its event time, so one held up longer than
	// the horizon (an ingest outage, a replay of the stream's retention) is
	// dropped; a day covers the stream's default retention.
	MinKeepTombstones = 24 * time.Hour
	// purgeEvery is how often the tombstones past the horizon are purged.
	purgeEvery = time.Minute
	// purgeRound is the rows one statement deletes: a short transaction
	// each, so the purge never holds many locks or a long snapshot.
	purgeRound = 5000
	// purgeRounds bounds a pass (100,000 rows a minute, 144M a day), so a
	// first pass over years of tombstones spreads over several minutes
	// instead of taking the pool.
	purgeRounds = 20
)

// expired reports whether e is a registration older than the horizon.
func (h *Handler) expired(e devices.Event, now time.Time) bool {
	return h.keep > 0 && e.State() == devices.Active && e.At < now.Add(-h.keep).UnixMicro()
}

// PurgeTombstones deletes the tombstones past the horizon now and every
// minute until ctx ends; with no horizon (KeepTombstones 0) it returns at
// once. Several ingest processes may run it: each round skips the rows
// another is deleting.
func (h *Handler) PurgeTombstones(ctx context.Context) error {
	if h.keep <= 0 {
		return nil
	}
	t := time.NewTicker(purgeEvery)
	defer t.Stop()
	for {
		h.purgeOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// purgeOnce is one pass: rounds until one deletes less than a round's worth.
func (h *Handler) purgeOnce(ctx context.Context) {
	before := h.now().Add(-h.keep)
	var total int64
	for range purgeRounds {
		n, err := devices.PurgeTombstones(ctx, h.db, before, purgeRound)
		total += n
		if err != nil {
			if ctx.Err() == nil {
				h.log.Warn().Err(err).Msg("tombstone purge failed; trying again in a minute")
			}
			break
		}
		if n < purgeRound {
			break
		}
	}
	h.metrics.purged.Add(float64(total))
	if total > 0 {
		h.log.Info().Int64("tombstones", total).Time("older_than", before).Msg("purged tombstones past --keep-tombstones")
	}
}
