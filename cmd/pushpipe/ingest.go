package main

import (
	"context"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/ingest"
)

// IngestCmd runs the ingest stage: device events from the ingest stream,
// collapsed per batch and bulk-upserted into PostgreSQL.
type IngestCmd struct {
	StageFlags  `embed:""`
	IngestFlags `embed:""`
}

// IngestFlags are ingest's own flags (under `all`: --ingest-...).
type IngestFlags struct {
	DBConns int32 `name:"db-conns" default:"4" help:"PostgreSQL connections (the pool size); the stage never opens more."`
}

// Run serves until SIGTERM.
func (c *IngestCmd) Run(g *Globals) error { return runStage(g, c.StageFlags, "ingest", c.IngestFlags) }

func (f IngestFlags) dbConns() int32 { return f.DBConns }

func (f IngestFlags) build(d *deps, _ pipeline.Options) (pipeline.Handler, []func(context.Context) error, error) {
	return ingest.New(ingest.Config{DB: d.db, Log: d.log, Metrics: d.reg}), nil, nil
}
