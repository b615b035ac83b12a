package main

import (
	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/resolve"
)

// ResolveCmd runs the resolve stage: ranges into preference-filtered user
// ids per partition.
type ResolveCmd struct {
	// A range is a few thousand users: a couple per read spread a campaign
	// over every resolve process. A range's work is mostly waiting for
	// PostgreSQL and Redis, so more handlers than cores keep both busy.
	//lint:ignore SA5008 kong reads every set tag (Tag.GetAll)
	StageFlags `embed:"" set:"batch_default=2" set:"concurrency_default=8"`
	Parallel   int   `default:"2" help:"Ranges of one read resolved at once."`
	DBConns    int32 `name:"db-conns" default:"8" help:"PostgreSQL connections (the pool size)."`
}

// Run serves until SIGTERM.
func (c *ResolveCmd) Run(g *Globals) error {
	rdb, err := g.Redis()
	if err != nil {
		return err
	}
	defer rdb.Close()
	db, err := g.DB(c.DBConns)
	if err != nil {
		return err
	}
	defer db.Close()
	h := resolve.New(resolve.Config{Redis: rdb, DB: db, Keys: g.Keys(), Log: g.Logger(), Parallel: c.Parallel})
	r := pipeline.NewRunner(rdb, g.Keys(), c.StageFlags.options("resolve", pipeline.StreamRanges), h,
		g.Logger(), pipeline.NewMetrics(g.Registry()))
	return runRunners(g, c.HTTP, rdb, r)
}
