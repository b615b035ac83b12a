// Package prefs keeps users' mutes: PostgreSQL holds the record of truth
// (the preferences table; this package owns its SQL), Redis a copy that
// resolve reads in one pipelined call per range (pipeline.PrefChannel's
// hash layout).
//
// The copy is rebuilt from PostgreSQL when Redis lost it: each partition has
// a marker key (pipeline.Keys.PrefsLoaded) set once its users' preferences
// are in Redis. A Redis that lost its data (FLUSHALL, a restart without
// AOF, a failover to an empty replica) lost the markers with it, so a
// reader that finds a partition's marker missing loads that partition
// again before it trusts what it reads (Ensure). A Redis that lost only
// some keys but kept the marker is not detected.
package prefs

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// Prefs are one user's mutes.
type Prefs struct {
	User       int64
	Channels   []string
	Categories []string
	Version    int64 // set by Put
}

const putSQL = `INSERT INTO preferences (user_id, muted_channels, muted_categories)
VALUES ($1, $2, $3)
ON CONFLICT (user_id) DO UPDATE SET muted_channels = $2, muted_categories = $3,
	version = preferences.version + 1, updated_at = now()
RETURNING version`

// Put stores p in PostgreSQL, then in Redis. Once it returns nil, the
// update survives the loss of Redis; if Redis fails after PostgreSQL
// committed, the caller reports the failure and a retry writes both again.
func Put(ctx context.Context, db *pgxpool.Pool, rdb rueidis.Client, keys pipeline.Keys, p Prefs) error {
	chans, cats := p.Channels, p.Categories
	if chans == nil {
		chans = []string{}
	}
	if cats == nil {
		cats = []string{}
	}
	if err := db.QueryRow(ctx, putSQL, p.User, chans, cats).Scan(&p.Version); err != nil {
		return fmt.Errorf("store preferences of user %d: %w", p.User, err)
	}
	e := apply(keys, p)
	if err := applyScript.Exec(ctx, rdb, e.Keys, e.Args).Error(); err != nil {
		return fmt.Errorf("copy preferences of user %d to Redis: %w", p.User, err)
	}
	return nil
}

// getSQL reads one user's mutes.
const getSQL = `SELECT muted_channels, muted_categories, version FROM preferences WHERE user_id = $1`

// Get reads user's mutes from PostgreSQL, the record of truth: empty lists
// for a user who never set any.
func Get(ctx context.Context, db *pgxpool.Pool, user int64) (Prefs, error) {
	var p Prefs
	if err := scanGet(db.QueryRow(ctx, getSQL, user), user, &p); err != nil {
		return p, fmt.Errorf("read preferences of user %d: %w", user, err)
	}
	return p, nil
}

// QueueGet queues Get's read on b, to be sent with the caller's other
// reads of the user in one round trip; it fills p when b's results are
// closed without error.
func QueueGet(b *pgx.Batch, user int64, p *Prefs) {
	b.Queue(getSQL, user).QueryRow(func(row pgx.Row) error {
		if err := scanGet(row, user, p); err != nil {
			return fmt.Errorf("preferences: %w", err)
		}
		return nil
	})
}

// scanGet reads getSQL's row into p: empty lists when there is none.
func scanGet(row pgx.Row, user int64, p *Prefs) error {
	*p = Prefs{User: user, Channels: []string{}, Categories: []string{}}
	err := row.Scan(&p.Channels, &p.Categories, &p.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	return err
}

// VersionField is the hash field holding the version of the copy. It
// mutes nothing: resolve reads only the channel and category fields.
const VersionField = "v"

// applyScript replaces a user's hash with a newer version, in one atomic
// step so resolve never reads a half-updated set; an older or equal version
// (a rebuild racing an update) changes nothing. KEYS[1] the hash; ARGV[1]
// the version, then field, "1", ...
var applyScript = rueidis.NewLuaScript(`
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1])
for i = 2, #ARGV, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return 1`)

func apply(keys pipeline.Keys, p Prefs) rueidis.LuaExec {
	args := make([]string, 0, 1+2*(len(p.Channels)+len(p.Categories)))
	args = append(args, strconv.FormatInt(p.Version, 10))
	for _, c := range p.Channels {
		args = append(args, pipeline.PrefChannel(c), "1")
	}
	for _, c := range p.Categories {
		args = append(args, pipeline.PrefCategory(c), "1")
	}
	return rueidis.LuaExec{Keys: []string{keys.Preferences(p.User)}, Args: args}
}

// eraseSQL empties a user's mutes and bumps the version. The row stays,
// with empty lists, as an unmute-all leaves it: the version must never go
// back, or the Redis copy (which keeps it) would refuse the user's next
// update. muted is how many mutes the row held.
const eraseSQL = `WITH old AS (
	SELECT user_id, cardinality(muted_channels) + cardinality(muted_categories) AS muted
	FROM preferences WHERE user_id = $1 FOR UPDATE)
UPDATE preferences p SET muted_channels = '{}', muted_categories = '{}', version = p.version + 1, updated_at = now()
FROM old WHERE p.user_id = old.user_id
RETURNING p.version, old.muted`

// Erase removes user's mutes from PostgreSQL, then from Redis, and returns
// how many there were. It is safe to repeat (a retry after Redis failed
// writes the empty copy again).
func Erase(ctx context.Context, db *pgxpool.Pool, rdb rueidis.Client, keys pipeline.Keys, user int64) (int, error) {
	var version int64
	var muted int
	err := db.QueryRow(ctx, eraseSQL, user).Scan(&version, &muted)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil // never set any: Redis has no copy either
	}
	if err != nil {
		return 0, fmt.Errorf("erase preferences of user %d: %w", user, err)
	}
	e := apply(keys, Prefs{User: user, Version: version})
	if err := applyScript.Exec(ctx, rdb, e.Keys, e.Args).Error(); err != nil {
		return 0, fmt.Errorf("erase the Redis copy of user %d's preferences: %w", user, err)
	}
	return muted, nil
}
