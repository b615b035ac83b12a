package main

import (
	"context"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/dedupe"
)

// DedupeFlags are dedupe's own flags: none yet.
type DedupeFlags struct{}

func (DedupeFlags) dbConns() int32 { return 0 }

func (DedupeFlags) build(d *deps, eff pipeline.Options) (pipeline.Handler, []func(context.Context) error, error) {
	h := dedupe.New(dedupe.Config{Redis: d.rdb, Keys: d.keys, Log: d.log})

	return h, nil, nil
}
