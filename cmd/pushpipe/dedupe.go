package main

import (
	"context"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/dedupe"
)

// DedupeCmd runs the dedupe stage: one notification per person.
type DedupeCmd struct {
	StageFlags  `embed:""`
	DedupeFlags `embed:""`
}

// DedupeFlags are dedupe's own flags: none yet.
type DedupeFlags struct{}

// Run serves until SIGTERM.
func (c *DedupeCmd) Run(g *Globals) error { return runStage(g, c.StageFlags, "dedupe", c.DedupeFlags) }

func (DedupeFlags) dbConns() int32 { return 0 }

func (DedupeFlags) build(d *deps, eff pipeline.Options) (pipeline.Handler, []func(context.Context) error, error) {
	h := dedupe.New(dedupe.Config{Redis: d.rdb, Keys: d.keys, Log: d.log})

	return h, nil, nil
}
