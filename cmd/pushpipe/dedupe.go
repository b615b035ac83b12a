package main

import (
	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/dedupe"
)

// DedupeCmd runs the dedupe stage: one notification per person.
type DedupeCmd struct {
	// Entries carry up to ~2000 users each; one script call marks a read.
	StageFlags `embed:"" set:"batch_default=50"`
}

// Run serves until SIGTERM.
func (c *DedupeCmd) Run(g *Globals) error {
	rdb, err := g.Redis()
	if err != nil {
		return err
	}
	defer rdb.Close()
	h := dedupe.New(dedupe.Config{Redis: rdb, Keys: g.Keys(), Log: g.Logger()})
	r := pipeline.NewRunner(rdb, g.Keys(), c.StageFlags.options("dedupe", pipeline.StreamDedupe), h,
		g.Logger(), pipeline.NewMetrics(g.Registry()))
	h.Bind(r.Options())
	return runRunners(g, c.HTTP, rdb, r)
}
