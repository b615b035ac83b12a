package devices

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// purgeTombstonesSQL deletes up to $2 tombstones whose event is older than
// $1, found by the devices_tombstones index (migration 00012). SKIP LOCKED:
// a row ingest is writing is left for the next round, so the purge never
// waits on ingest's row locks and the two never deadlock.
const purgeTombstonesSQL = `DELETE FROM devices d USING (
	SELECT app, token FROM devices WHERE state <> 0 AND event_at < $1
	LIMIT $2 FOR UPDATE SKIP LOCKED) old
WHERE d.app = old.app AND d.token = old.token`

// purgeErasuresSQL deletes up to $2 erasure records older than $1 (index
// erasures_at, migration 00012).
const purgeErasuresSQL = `DELETE FROM erasures x USING (
	SELECT user_id FROM erasures WHERE erased_at < $1
	LIMIT $2 FOR UPDATE SKIP LOCKED) old
WHERE x.user_id = old.user_id`

// PurgeErasures deletes at most limit erasure records older than before,
// and returns how many it deleted. A record only makes ingest void the
// erased user's registrations accepted before it and still queued; past
// the tombstones' horizon ingest drops those anyway, and the record is the
// last place the erased user's id was kept.
func PurgeErasures(ctx context.Context, db *pgxpool.Pool, before time.Time, limit int) (int64, error) {
	return purge(ctx, db, purgeErasuresSQL, "erasures", before, limit)
}

// PurgeTombstones deletes at most limit tombstones (deleted and invalidated
// devices) whose event is older than before, and returns how many it
// deleted: fewer than limit means none is left. A tombstone is kept so that
// an older registration applied later cannot bring its device back; past
// the horizon no such registration is applied (ingest drops it, see
// stages/ingest), so the row is only weight on the table and its indexes.
func PurgeTombstones(ctx context.Context, db *pgxpool.Pool, before time.Time, limit int) (int64, error) {
	return purge(ctx, db, purgeTombstonesSQL, "tombstones", before, limit)
}

// purge runs one of the purge statements ($1 the horizon, $2 the limit)
// and returns the rows it deleted.
func purge(ctx context.Context, db *pgxpool.Pool, sql, what string, before time.Time, limit int) (int64, error) {
	tag, err := db.Exec(ctx, sql, before, limit)
	if err != nil {
		return 0, fmt.Errorf("purge %s older than %s: %w", what, before.UTC().Format(time.RFC3339), err)
	}
	return tag.RowsAffected(), nil
}
