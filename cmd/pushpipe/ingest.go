package main

import (
	"context"
	"fmt"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/ingest"
)

// IngestFlags are ingest's own flags (under `all`: --ingest-...).
type IngestFlags struct {
	DBConns        int32         `name:"db-conns" default:"4" help:"PostgreSQL connections (the pool size, opened at start); the stage never opens more."`
	KeepTombstones time.Duration `name:"keep-tombstones" default:"720h" help:"Keep deleted and invalidated devices this long, then purge them; registrations older than it are dropped (at least 24h; 0 keeps them for ever)."`
	prefix         string        // "ingest-" under all (setPrefix), for the flag's name in a refusal
}

func (f *IngestFlags) setPrefix(p string) { f.prefix = p }

func (f IngestFlags) dbConns() int32 { return f.DBConns }

// check refuses a horizon shorter than a day before anything connects: a
// registration held up longer than it is dropped.
func (f IngestFlags) check() error {
	if f.KeepTombstones != 0 && f.KeepTombstones < ingest.MinKeepTombstones {
		return fmt.Errorf("--%skeep-tombstones %s: at least %s (registrations held up longer are dropped), or 0 to keep them for ever",
			f.prefix, f.KeepTombstones, ingest.MinKeepTombstones)
	}
	return nil
}

func (f IngestFlags) build(d *deps, _ pipeline.Options) (pipeline.Handler, []func(context.Context) error, error) {
	h := ingest.New(ingest.Config{DB: d.db, Log: d.log, Metrics: d.reg, KeepTombstones: f.KeepTombstones})
	return h, []func(context.Context) error{h.PurgeTombstones}, nil
}
