package campaign

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// Reader reads campaigns' reports (Progress, List) under settings of its
// own. The zero Reader is the deployment's, the one the package's
// functions use: a field left zero takes its default.
type Reader struct {
	// DownAfter is how long a running campaign goes without progress
	// before it has no expected finish, and is stalled or queued
	// (Report.StalledSinceMs, QueuedSinceMs); and how recently another
	// campaign or a stage ahead must have moved for it to be queued.
	// Default pipeline.DownAfter, the time stages beating at the default
	// interval take to read as down. A test sets a few seconds, so as not
	// to wait the default out.
	DownAfter time.Duration
}

func (rd Reader) downAfter() time.Duration {
	if rd.DownAfter > 0 {
		return rd.DownAfter
	}
	return pipeline.DownAfter
}

// Progress is the package's Progress under rd's settings.
func (rd Reader) Progress(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys, id string) (Report, error) {
	var r row
	err := readRecord(ctx, func(ctx context.Context) (err error) {
		r, err = loadCampaign(ctx, db, id)
		return err
	})
	if outage(ctx, err) {
		return rd.redisProgress(ctx, rdb, keys, id, err)
	}
	if err != nil {
		return Report{ID: id}, err
	}
	return r.progress(ctx, rdb, db, keys, rd)
}
