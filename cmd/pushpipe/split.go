package main

import (
	"context"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/split"
)

// SplitFlags are split's own flags (under `all`: --split-...).
type SplitFlags struct {
	RangeSize int   `name:"range-size" default:"5000" help:"Subscribers per range."`
	Segments  int   `default:"4" help:"Parts of a large channel's id space cut concurrently."`
	Parallel  int   `default:"4" help:"Segments (of all channels) cut at once, each holding a database connection."`
	HighWater int64 `name:"max-deliver-backlog" default:"10000" help:"Stop emitting ranges while the deliver group has more entries outstanding (each up to ~2000 users); 0 disables."`
	DBConns   int32 `name:"db-conns" default:"4" help:"PostgreSQL connections (the pool size, opened at start)."`
}

func (f SplitFlags) dbConns() int32 { return f.DBConns }

func (f SplitFlags) build(d *deps, eff pipeline.Options) (pipeline.Handler, []func(context.Context) error, error) {
	return split.New(split.Config{Redis: d.rdb, DB: d.db, Keys: d.keys, Log: d.log,
		RangeSize: f.RangeSize, Segments: f.Segments, Parallel: f.Parallel, HighWater: f.HighWater,
		MaxWait: eff.ClaimIdle / 3}), nil, nil
}
