package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
)

// deps are what stage handlers are built from: connected once per process
// and shared by every stage it runs (one under `pushpipe <stage>`, all of
// them under `pushpipe all`).
type deps struct {
	ctx     context.Context
	rdb     rueidis.Client
	db      *pgxpool.Pool // nil when no stage of the process needs PostgreSQL
	keys    pipeline.Keys
	log     zerolog.Logger
	reg     *prometheus.Registry
	closers []func() // run when the process stops, last first
}

// stage is a stage's own flags: how many PostgreSQL connections it wants,
// and how to build its handler for the effective options of the runner that
// will feed it, with anything else it runs beside the runner (deliver's
// retry poller).
type stage interface {
	dbConns() int32
	build(d *deps, eff pipeline.Options) (pipeline.Handler, []func(context.Context) error, error)
}

// sidecar is something a process runs beside its stages, built from the
// same deps: the API under `pushpipe all`.
type sidecar struct {
	dbConns int32
	build   func(d *deps) func(context.Context) error
}

// runStages runs the given stages of the stage table, in one process: one
// Redis client, one PostgreSQL pool sized for all of them, one metrics
// registry, one ops server; a runner per stage built from the same flags
// whether the process runs one stage or every one; plus the sidecars. It
// serves until SIGTERM, then lets them drain.
func runStages(g *Globals, flags StageFlags, stages map[string]stage, sidecars ...sidecar) error {
	d := &deps{ctx: g.Context(), keys: g.Keys(), log: g.Logger(), reg: g.Registry()}
	defer func() {
		for i := len(d.closers) - 1; i >= 0; i-- {
			d.closers[i]()
		}
	}()
	var err error
	if d.rdb, err = g.Redis(); err != nil {
		return err
	}
	d.closers = append(d.closers, d.rdb.Close)
	var conns int32
	for _, sc := range sidecars {
		conns += sc.dbConns
	}
	for _, def := range pipeline.Stages {
		if s, ok := stages[def.Name]; ok && def.DB {
			conns += s.dbConns()
		}
	}
	if conns > 0 {
		if d.db, err = g.DB(conns); err != nil {
			return err
		}
		d.closers = append(d.closers, d.db.Close)
	}

	metrics := pipeline.NewMetrics(d.reg)
	var runners []*pipeline.Runner
	var fns []func(context.Context) error
	for _, sc := range sidecars {
		fns = append(fns, sc.build(d))
	}
	for _, def := range pipeline.Stages {
		s, ok := stages[def.Name]
		if !ok {
			continue
		}
		opts := flags.options(def)
		if ro, ok := s.(runnerOptioner); ok {
			ro.runnerOptions(&opts)
		}
		if len(stages) > 1 && opts.Consumer != "" {
			opts.Consumer += "-" + def.Name // one process, one consumer name per group
		}
		eff := opts.Effective(d.keys)
		h, runs, err := s.build(d, eff)
		if err != nil {
			return fmt.Errorf("%s: %w", def.Name, err)
		}
		r := pipeline.NewRunner(d.rdb, d.keys, eff, h, d.log, metrics)
		runners = append(runners, r)
		fns = append(fns, r.Run)
		fns = append(fns, runs...)
	}
	fns = append(fns, func(ctx context.Context) error {
		return pipeline.Serve(ctx, flags.HTTP, pipeline.OpsHandler(d.reg, stagesReady(d, runners, len(sidecars) > 0), d.log), d.log)
	})
	return pipeline.RunGroup(d.ctx, fns...)
}

// stagesReady is a stage process's readiness: Redis answers (a runner keeps
// "consuming" through an outage, its reads failing), PostgreSQL answers if
// a stage of the process queries it, every runner has started consuming,
// and the process has work: a webhook whose group was retired (results
// retire --force) reads nothing more and says "group retired", so its pod
// shows not ready rather than exit into a restart that would create the
// group anew (Runner.recreate). Only when that is all the process does: a
// process with other stages or a sidecar (the API under all) serves them
// still, and the runner's log says the rest.
func stagesReady(d *deps, runners []*pipeline.Runner, sidecars bool) func(context.Context) error {
	checks := []func(context.Context) error{pipeline.RedisReady(d.rdb)}
	if d.db != nil {
		checks = append(checks, pipeline.PostgresReady(d.db.Ping))
	}
	checks = append(checks, func(context.Context) error {
		var errs []error
		retired := 0
		for _, r := range runners {
			if r.Retired() {
				retired++
			} else if !r.Ready() {
				errs = append(errs, &pipeline.NotReady{Part: r.Options().Stage, State: "starting"})
			}
		}
		if !sidecars && retired > 0 && retired == len(runners) {
			for _, r := range runners {
				errs = append(errs, &pipeline.NotReady{Part: r.Options().Stage, State: "group retired"})
			}
		}
		return errors.Join(errs...)
	})
	return pipeline.AllReady(checks...)
}
