package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/split"
)

// SplitFlags are split's own flags (under `all`: --split-...).
type SplitFlags struct {
	RangeSize int   `name:"range-size" default:"5000" help:"Subscribers per range."`
	Segments  int   `name:"segments" default:"4" help:"Parts of a large channel's id space cut concurrently."`
	Parallel  int   `name:"parallel" default:"4" help:"Segments (of all channels) cut at once, each holding a database connection."`
	HighWater int64 `name:"max-deliver-backlog" default:"10000" help:"Stop emitting ranges while the deliver group has more entries outstanding (each up to ~2000 users); 0 disables."`
	DBConns   int32 `name:"db-conns" default:"4" help:"PostgreSQL connections (the pool size, opened at start)."`
	// A capped campaign's put-off entries wait in deliver's delayed set,
	// which the backlog mark does not count: this bounds them instead.
	PacedAhead time.Duration `name:"paced-ahead" default:"1m" help:"Cut a capped campaign (rate_per_second) this much of its sending ahead of its sends: Redis then holds about that much of it, whatever its size; 0 disables."`
}

// check refuses a negative --paced-ahead, which would read as off, and
// what split.New would quietly replace by its defaults (a --range-size,
// --segments or --parallel below 1) or read as off (a negative
// --max-deliver-backlog): every problem at once. A check, not a kong
// Validate: kong validated `split`'s flags but not all's --split-*.
func (f SplitFlags) check() error {
	var errs []error
	if f.PacedAhead < 0 {
		errs = append(errs, fmt.Errorf("--paced-ahead must be 0 (off) or a positive duration such as 1m, got %v", f.PacedAhead))
	}
	for _, n := range []struct {
		flag string
		v    int
	}{{"--range-size", f.RangeSize}, {"--segments", f.Segments}, {"--parallel", f.Parallel}} {
		if n.v < 1 {
			errs = append(errs, fmt.Errorf("%s must be at least 1, got %d", n.flag, n.v))
		}
	}
	if f.HighWater < 0 {
		errs = append(errs, fmt.Errorf("--max-deliver-backlog must be 0 (off) or more entries, got %d", f.HighWater))
	}
	return errors.Join(errs...)
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
