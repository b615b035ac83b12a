package ingest

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/pipeline"
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
	// purgeRound is the rows one statement deletes, purgeRounds the most
	// statements of a pass: 100,000 rows a minute, 144M a day.
	purgeRound  = 5000
	purgeRounds = 20
)

// expired reports whether e is a registration older than the horizon.
func (h *Handler) expired(e devices.Event, now time.Time) bool {
	return h.keep > 0 && e.State() == devices.Active && e.At < now.Add(-h.keep).UnixMicro()
}

// PurgeTombstones deletes the tombstones and the erasure records past the
// horizon now and every minute until ctx ends; with no horizon (KeepTombstones 0) it returns at
// once. Several ingest processes may run it: each round skips the rows
// another is deleting.
func (h *Handler) PurgeTombstones(ctx context.Context) error {
	if h.keep <= 0 {
		return nil
	}
	purger := func(what string, purge func(context.Context, *pgxpool.Pool, time.Time, int) (int64, error)) func(context.Context) error {
		return pipeline.Purger{What: what, Flag: "--keep-tombstones", Every: purgeEvery, Round: purgeRound, Rounds: purgeRounds,
			Purge: func(ctx context.Context, limit int) (int64, error) {
				return purge(ctx, h.db, h.now().Add(-h.keep), limit)
			},
			Purged: h.metrics.purged.WithLabelValues(what), Log: h.log}.Run
	}
	return pipeline.RunGroup(ctx, purger("tombstones", devices.PurgeTombstones), purger("erasures", devices.PurgeErasures))
}
