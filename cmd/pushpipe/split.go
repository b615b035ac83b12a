package main

import (
	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/split"
)

// SplitCmd runs the split stage: campaigns into ranges of subscribers.
type SplitCmd struct {
	// A campaign entry is a whole campaign's split: one at a time per read.
	StageFlags `embed:"" set:"batch_default=1"`
	RangeSize  int   `name:"range-size" default:"5000" help:"Subscribers per range."`
	Segments   int   `default:"4" help:"Parts of a large channel's id space cut concurrently."`
	Parallel   int   `default:"4" help:"Segments (of all channels) cut at once, each holding a database connection."`
	HighWater  int64 `name:"max-deliver-backlog" default:"10000" help:"Stop emitting ranges while the deliver group has more entries outstanding (each up to ~2000 users); 0 disables."`
	DBConns    int32 `name:"db-conns" default:"4" help:"PostgreSQL connections (the pool size)."`
}

// Run serves until SIGTERM.
func (c *SplitCmd) Run(g *Globals) error {
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
	opts := c.StageFlags.options("split", pipeline.StreamCampaigns)
	h := split.New(split.Config{Redis: rdb, DB: db, Keys: g.Keys(), Log: g.Logger(),
		RangeSize: c.RangeSize, Segments: c.Segments, Parallel: c.Parallel, HighWater: c.HighWater, MaxWait: opts.ClaimIdle / 3})
	r := pipeline.NewRunner(rdb, g.Keys(), opts, h, g.Logger(), pipeline.NewMetrics(g.Registry()))
	return runRunners(g, c.HTTP, rdb, r)
}
