package main

import (
	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/ingest"
)

// IngestCmd runs the ingest stage: device events from the ingest stream,
// collapsed per batch and bulk-upserted into PostgreSQL.
type IngestCmd struct {
	StageFlags `embed:"" set:"batch_default=5000"`
	DBConns    int32 `name:"db-conns" default:"4" help:"PostgreSQL connections (the pool size); the stage never opens more."`
}

// Run serves until SIGTERM.
func (c *IngestCmd) Run(g *Globals) error {
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
	h := ingest.New(ingest.Config{DB: db, Log: g.Logger(), Metrics: g.Registry()})
	r := pipeline.NewRunner(rdb, g.Keys(), c.StageFlags.options("ingest", pipeline.StreamIngest), h,
		g.Logger(), pipeline.NewMetrics(g.Registry()))
	return runRunners(g, c.HTTP, rdb, r)
}
