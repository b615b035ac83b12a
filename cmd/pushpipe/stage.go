package main

import (
	"context"
	"errors"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// runRunners runs stage runners plus the ops HTTP server (metrics, health,
// readiness) until SIGTERM, then lets them drain.
func runRunners(g *Globals, httpAddr string, rdb rueidis.Client, runners ...*pipeline.Runner) error {
	log := g.Logger()
	fns := []func(context.Context) error{
		func(ctx context.Context) error {
			return pipeline.Serve(ctx, httpAddr, pipeline.OpsHandler(g.Registry(), stagesReady(rdb, runners)), log)
		},
	}
	for _, r := range runners {
		fns = append(fns, r.Run)
	}
	return pipeline.RunGroup(g.Context(), fns...)
}

// stagesReady is a stage process's readiness: Redis answers (a runner keeps
// "consuming" through an outage, its reads failing) and every runner has
// started consuming.
func stagesReady(rdb rueidis.Client, runners []*pipeline.Runner) func(context.Context) error {
	redis := pipeline.RedisReady(rdb)
	return func(ctx context.Context) error {
		for _, r := range runners {
			if !r.Ready() {
				return errors.New(r.Options().Stage + " is not consuming yet")
			}
		}
		return redis(ctx)
	}
}
