package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// upsertSQL applies a batch of collapsed events in one statement (one round
// trip, one implicit transaction). A row changes only when the event is newer
// than the row's event time, so replays and reordering never regress a
// device, and the row then is exactly what its latest event says: a put
// (state 0) sets owner, platform and locale, so a token moving to another
// user is just a newer put; a delete or invalidation turns the row into a
// tombstone (state 1 or 2, with whatever owner the event carries), inserted
// even for an unknown token so that a late, older put cannot bring it back.
// Because the latest event alone decides the row, the table does not depend
// on the order or batching in which events arrive.
//
// An event of a user erased at or after its time (the erasures table,
// pipeline/devices.Erase) no longer names the user: a put becomes a
// tombstone, so a registration accepted before the erasure but applied
// after it does not bring the device back, while a put newer than the
// erasure (the user came back) registers it. The erasure is looked up per
// event by its primary key, not joined: a join may reorder the rows, and
// the (app, token) order of the insert is what keeps concurrent batches
// from deadlocking.
//
// An invalidation of an erased user's device never names the user, however
// late: the provider's answer to a send made before the erasure arrives
// after it and is stamped after it, and the event cannot tell that send
// from one to a device the user registered again since. Naming the user
// put an erased id back on a tombstone; not naming it costs a returning
// user only the owner shown on a dead token. Both are a function of the
// event and the erasures, so the table still does not depend on the order.
const upsertSQL = `
INSERT INTO devices AS d (app, token, user_id, platform, locale, state, event_at)
SELECT app, token,
       CASE WHEN erased THEN 0 ELSE user_id END,
       platform,
       CASE WHEN erased THEN '' ELSE locale END,
       CASE WHEN erased AND state = 0 THEN 1 ELSE state END,
       event_at
FROM (SELECT e.*, e.user_id <> 0 AND (SELECT CASE WHEN e.state = 2 THEN true ELSE e.event_at <= x.erased_at END
                                        FROM erasures x WHERE x.user_id = e.user_id) AS erased
      FROM unnest($1::text[], $2::text[], $3::bigint[], $4::smallint[], $5::text[], $6::smallint[], $7::timestamptz[])
           AS e(app, token, user_id, platform, locale, state, event_at)) e
ON CONFLICT (app, token) DO UPDATE SET
    user_id    = excluded.user_id,
    platform   = excluded.platform,
    locale     = excluded.locale,
    state      = excluded.state,
    event_at   = excluded.event_at,
    updated_at = now()
WHERE d.event_at < excluded.event_at`

// apply writes events (unique per (app, token)) and returns how many rows it
// inserted or changed; the others were older than their rows.
func apply(ctx context.Context, db *pgxpool.Pool, events []devices.Event) (int64, error) {
	if len(events) == 0 {
		return 0, nil
	}
	n := len(events)
	var (
		apps, tokens, locales = make([]string, n), make([]string, n), make([]string, n)
		users                 = make([]int64, n)
		platforms, states     = make([]int16, n), make([]int16, n)
		ats                   = make([]time.Time, n)
	)
	for i, e := range events {
		apps[i], tokens[i], locales[i] = e.App, e.Token, e.Locale
		users[i], platforms[i], states[i] = e.User, int16(e.Platform), int16(e.State())
		ats[i] = time.UnixMicro(e.At)
	}
	// One round trip, one implicit transaction: the erasure lock (shared,
	// held until the upsert commits) and the upsert, whose own snapshot,
	// taken after the lock, sees every erasure that committed before it.
	b := &pgx.Batch{}
	b.Queue(devices.LockErasuresSQL, devices.ErasureLock)
	b.Queue(upsertSQL, apps, tokens, users, platforms, locales, states, ats)
	br := db.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return 0, fmt.Errorf("take the erasure lock: %w", err)
	}
	tag, err := br.Exec()
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), br.Close()
}
