package main

import (
	"context"
	"fmt"
	"time"

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
	// A capped campaign's put-off entries wait in deliver's delayed set,
	// which the backlog mark does not count: this bounds them instead.
	PacedAhead time.Duration `name:"paced-ahead" default:"1m" help:"Cut a capped campaign (rate_per_second) this much of its sending ahead of its sends: Redis then holds about that much of it, whatever its size; 0 disables."`
}

// Validate refuses a negative --paced-ahead, which would read as off.
func (f SplitFlags) Validate() error {
	if f.PacedAhead < 0 {
		return fmt.Errorf("--paced-ahead must be 0 (off) or a positive duration such as 1m, got %v", f.PacedAhead)
	}
	return nil
}

func (f SplitFlags) dbConns() int32 { return f.DBConns }

func (f SplitFlags) build(d *deps, eff pipeline.Options) (pipeline.Handler, []func(context.Context) error, error) {
	paced := f.PacedAhead
	if paced == 0 {
		paced = -1 // the Config's default is a minute; 0 here means off
	}
	return split.New(split.Config{Redis: d.rdb, DB: d.db, Keys: d.keys, Log: d.log,
		RangeSize: f.RangeSize, Segments: f.Segments, Parallel: f.Parallel, HighWater: f.HighWater,
		MaxWait: eff.ClaimIdle / 3, PacedAhead: paced}), nil, nil
}
