package main

import (
	"context"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/ingest"
)

// IngestFlags are ingest's own flags (under `all`: --ingest-...).
type IngestFlags struct {
	DBConns int32 `name:"db-conns" default:"4" help:"PostgreSQL connections (the pool size, opened at start); the stage never opens more."`
}

func (f IngestFlags) dbConns() int32 { return f.DBConns }

func (f IngestFlags) build(d *deps, _ pipeline.Options) (pipeline.Handler, []func(context.Context) error, error) {
	return ingest.New(ingest.Config{DB: d.db, Log: d.log, Metrics: d.reg}), nil, nil
}
