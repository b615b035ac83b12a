package devices

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/pipeline"
)

// Row is a device row as the devices table holds it.
type Row struct {
	App       string
	Platform  Platform // 0 for a tombstone of a token never registered
	Token     string
	Locale    string
	State     State
	EventAt   time.Time // the time of the event that made the row what it is
	UpdatedAt time.Time // when ingest last wrote it
}

// User is what the devices package holds about one user: device rows,
// channels and the last erasure.
type User struct {
	// Devices are the user's rows in any app and state (tombstones too: a
	// device the provider invalidated is why a user got nothing), by app
	// and token, up to the limit asked; DevicesMore says there are more.
	Devices     []Row
	DevicesMore bool
	// Channels are the channels the user subscribes to, in order, up to
	// the limit asked; ChannelsMore says there are more.
	Channels     []string
	ChannelsMore bool
	ErasedAt     time.Time // the last erasure; zero: never erased
}

// The reads of QueueUser: the devices by the devices_user index, the
// channels by subscriptions_user (migration 00011), each one row past the
// limit to tell whether there are more.
const (
	userDevicesSQL = `SELECT app, platform, token, locale, state, event_at, updated_at
FROM devices WHERE user_id = $1 ORDER BY app, token LIMIT $2`
	userChannelsSQL = `SELECT channel FROM subscriptions WHERE user_id = $1 ORDER BY channel LIMIT $2`
	erasedAtSQL     = `SELECT erased_at FROM erasures WHERE user_id = $1`
)

// QueueUser queues on b the reads of user's device rows and channels (up
// to limit each) and last erasure; they fill u when b's results are closed
// without error. Queued with the caller's other reads of the user, they
// are one round trip to PostgreSQL, and one snapshot (a batch is one
// implicit transaction), where each read of its own was a round trip.
func QueueUser(b *pgx.Batch, user int64, limit int, u *User) {
	b.Queue(userDevicesSQL, user, limit+1).Query(func(rows pgx.Rows) error {
		out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Row, error) {
			var d Row
			err := r.Scan(&d.App, &d.Platform, &d.Token, &d.Locale, &d.State, &d.EventAt, &d.UpdatedAt)
			return d, err
		})
		if err != nil {
			return fmt.Errorf("devices: %w", err)
		}
		u.Devices, u.DevicesMore = firstN(out, limit)
		return nil
	})
	b.Queue(userChannelsSQL, user, limit+1).Query(func(rows pgx.Rows) error {
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("channels: %w", err)
		}
		u.Channels, u.ChannelsMore = firstN(out, limit)
		return nil
	})
	b.Queue(erasedAtSQL, user).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&u.ErasedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("erasure: %w", err)
		}
		return nil
	})
}

// firstN is up to n of s, and whether s holds more.
func firstN[T any](s []T, n int) ([]T, bool) {
	if len(s) > n {
		return s[:n], true
	}
	return s, false
}

// Unsubscribe removes every subscription of user and returns the channels
// it had.
func Unsubscribe(ctx context.Context, db *pgxpool.Pool, user int64) ([]string, error) {
	rows, err := db.Query(ctx, `DELETE FROM subscriptions WHERE user_id = $1 RETURNING channel`, user)
	if err != nil {
		return nil, fmt.Errorf("unsubscribe user %d: %w", user, err)
	}
	chans, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("unsubscribe user %d: %w", user, err)
	}
	return chans, nil
}

// ErasureLock is the advisory lock that orders erasures against ingest's
// upserts. Ingest holds it shared for each batch's statement (LockErasures
// queued before it, in the same implicit transaction); Erase takes it
// exclusively while it records the erasure and lists the user's rows. So
// an upsert either committed before (its rows are listed and deleted) or
// starts after the erasure committed (its statement sees the erasure and
// voids the user's older puts): none slips in between.
const ErasureLock int64 = 0x7075736865726173 // "pusheras"

// LockErasuresSQL is the statement ingest queues before its upsert.
const LockErasuresSQL = `SELECT pg_advisory_xact_lock_shared($1)`

// Erase's statements. The erasure time eraseRecordSQL stores is at least
// the time asked for and newer than every row of the user, so each row's
// delete event wins (a put stamped by another API process whose clock is
// ahead is erased too), and never older than an earlier erasure of the
// user.
const (
	eraseLockSQL   = `SELECT pg_advisory_xact_lock($1)`
	eraseRecordSQL = `INSERT INTO erasures AS x (user_id, erased_at)
SELECT $1::bigint, greatest($2::timestamptz, max(event_at) + interval '1 microsecond') FROM devices WHERE user_id = $1
ON CONFLICT (user_id) DO UPDATE SET erased_at = greatest(x.erased_at, excluded.erased_at)
RETURNING erased_at`
	eraseRowsSQL = `SELECT app, token FROM devices WHERE user_id = $1`
)

// Erasure is what Erase recorded: the erasure time, and the rows of the user
// then (each to be deleted by an event of that time).
type Erasure struct {
	At     int64 // unix microseconds
	Tokens []Event
}

// Erase records that user is erased as of at (unix microseconds) and
// returns the delete events of the user's rows, stamped with the erasure
// time, for the caller to append to the ingest stream (the devices table is
// ingest's to write). Recording again is harmless: the time only grows.
func Erase(ctx context.Context, db *pgxpool.Pool, user int64, at int64) (Erasure, error) {
	var e Erasure
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, eraseLockSQL, ErasureLock); err != nil {
			return err
		}
		var t time.Time
		if err := tx.QueryRow(ctx, eraseRecordSQL, user, time.UnixMicro(at)).Scan(&t); err != nil {
			return err
		}
		e.At = t.UnixMicro()
		rows, err := tx.Query(ctx, eraseRowsSQL, user)
		if err != nil {
			return err
		}
		e.Tokens, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
			ev := Event{Op: pipeline.OpDelete, At: e.At}
			return ev, r.Scan(&ev.App, &ev.Token)
		})
		return err
	})
	if err != nil {
		return Erasure{}, fmt.Errorf("erase user %d: %w", user, err)
	}
	return e, nil
}
