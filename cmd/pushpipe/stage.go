package main

import (
	"context"
	"errors"

	"github.com/pushpipe/pushpipe/pipeline"
)

// runRunners runs stage runners plus the ops HTTP server (metrics, health,
// readiness) until SIGTERM, then lets them drain.
func runRunners(g *Globals, httpAddr string, runners ...*pipeline.Runner) error {
	log := g.Logger()
	ready := func(context.Context) error {
		for _, r := range runners {
			if !r.Ready() {
				return errors.New(r.Options().Stage + " is not consuming yet")
			}
		}
		return nil
	}
	fns := []func(context.Context) error{
		func(ctx context.Context) error {
			return pipeline.Serve(ctx, httpAddr, pipeline.OpsHandler(g.Registry(), ready), log)
		},
	}
	for _, r := range runners {
		fns = append(fns, r.Run)
	}
	return pipeline.RunGroup(g.Context(), fns...)
}
