package prefs

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// partitionSQL reads the preferences of one user partition
// (pipeline.Keys.UserPartition in SQL). A scan of the table: it runs only
// when Redis lost its copy, and the table holds only users who ever muted.
const partitionSQL = `SELECT user_id, muted_channels, muted_categories, version FROM preferences
WHERE (abs(user_id) / $1) % $2 = $3`

// loadChunk is how many users' hashes one pipelined call writes.
const loadChunk = 1000

// Load copies partition p's preferences from PostgreSQL to Redis and then
// sets the partition's marker. Concurrent loads, and updates meanwhile, are
// harmless: a hash is only ever replaced by a newer version.
func Load(ctx context.Context, db *pgxpool.Pool, rdb rueidis.Client, keys pipeline.Keys, p int) (int, error) {
	rows, err := db.Query(ctx, partitionSQL, keys.Bucket, keys.Partitions, p)
	if err != nil {
		return 0, fmt.Errorf("load preferences of partition %d: %w", p, err)
	}
	var batch []rueidis.LuaExec
	n := 0
	flush := func() error {
		for _, res := range applyScript.ExecMulti(ctx, rdb, batch...) {
			if err := res.Error(); err != nil {
				return fmt.Errorf("load preferences of partition %d into Redis: %w", p, err)
			}
		}
		n += len(batch)
		batch = batch[:0]
		return nil
	}
	var pr Prefs
	_, err = pgx.ForEachRow(rows, []any{&pr.User, &pr.Channels, &pr.Categories, &pr.Version}, func() error {
		batch = append(batch, apply(keys, pr))
		if len(batch) == loadChunk {
			return flush()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = flush()
	}
	if err != nil {
		return n, err
	}
	if err := rdb.Do(ctx, rdb.B().Set().Key(keys.PrefsLoaded(p)).Value("1").Build()).Error(); err != nil {
		return n, fmt.Errorf("mark preferences of partition %d loaded: %w", p, err)
	}
	return n, nil
}

// Loaded is the command that tells whether partition p's copy is in Redis
// (its reply is 1): readers send it in the same pipeline as their reads.
func Loaded(rdb rueidis.Client, keys pipeline.Keys, p int) rueidis.Completed {
	return rdb.B().Exists().Key(keys.PrefsLoaded(p)).Build()
}
