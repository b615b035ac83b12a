package main

import (
	"context"
	"fmt"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/resolve"
)

// ResolveFlags are resolve's own flags (under `all`: --resolve-...).
type ResolveFlags struct {
	Parallel int   `name:"parallel" default:"2" help:"Ranges of one read resolved at once."`
	DBConns  int32 `name:"db-conns" default:"8" help:"PostgreSQL connections (the pool size, opened at start)."`
}

func (f ResolveFlags) dbConns() int32 { return f.DBConns }

// check refuses a --parallel below 1, which resolve.New replaced by its
// default without a word.
func (f ResolveFlags) check() error {
	if f.Parallel < 1 {
		return fmt.Errorf("--parallel must be at least 1 range at once, got %d", f.Parallel)
	}
	return nil
}

func (f ResolveFlags) build(d *deps, _ pipeline.Options) (pipeline.Handler, []func(context.Context) error, error) {
	return resolve.New(resolve.Config{Redis: d.rdb, DB: d.db, Keys: d.keys, Log: d.log, Parallel: f.Parallel}), nil, nil
}
