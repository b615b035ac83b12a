package main

import (
	"context"
	"fmt"
	"os"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/api"
	"github.com/pushpipe/pushpipe/stages/dedupe"
	"github.com/pushpipe/pushpipe/stages/deliver"
	"github.com/pushpipe/pushpipe/stages/ingest"
	"github.com/pushpipe/pushpipe/stages/resolve"
	"github.com/pushpipe/pushpipe/stages/split"
)

// AllCmd runs the API and every stage in one process: a small deployment, or
// a laptop. Each stage is the same handler and runner its own subcommand
// builds, sharing one Redis client, one PostgreSQL pool and one metrics
// registry.
type AllCmd struct {
	Listen         string `default:"127.0.0.1:8080" help:"Serve the API on this address."`
	InsecureNoAuth bool   `name:"insecure-no-auth" help:"Serve the API without authentication (a closed test network only)."`
	RangeSize      int    `name:"range-size" default:"5000" help:"split: subscribers per range."`
	// The deliver flags (providers, sink, rate, retries) and the stage flags
	// (consumer, concurrency, claim idle...), which apply to every stage.
	Deliver DeliverCmd `embed:""`
	// The API's connection and body memory caps.
	ListenFlags `embed:""`
}

// Per-stage batch sizes, as each stage's own subcommand sets them.
var allBatch = map[string]int{"ingest": 5000, "split": 1, "resolve": 2, "dedupe": 50, "deliver": 8}

// Run serves until SIGTERM.
func (c *AllCmd) Run(g *Globals) error {
	appKeys, err := api.ParseAppKeys(os.Getenv("PUSHPIPE_APP_KEYS"))
	if err != nil {
		return err
	}
	auth := api.Auth{AdminToken: os.Getenv("PUSHPIPE_ADMIN_TOKEN"), AppKeys: appKeys, Insecure: c.InsecureNoAuth}
	if err := auth.Validate(); err != nil {
		return fmt.Errorf("pushpipe all: %w", err)
	}
	ctx, log, keys := g.Context(), g.Logger(), g.Keys()
	senders, closeSenders, err := c.Deliver.senders(ctx)
	if err != nil {
		return err
	}
	defer closeSenders()
	rdb, err := g.Redis()
	if err != nil {
		return err
	}
	defer rdb.Close()
	// --db-conns is deliver's share; split, resolve, ingest and the API
	// hold a few more each.
	db, err := g.DB(c.Deliver.DBConns + 16)
	if err != nil {
		return err
	}
	defer db.Close()

	metrics := pipeline.NewMetrics(g.Registry())
	opts := func(stage, stream string) pipeline.Options {
		f := c.Deliver.StageFlags
		f.Batch = allBatch[stage]
		o := f.options(stage, stream)
		if o.Consumer != "" {
			o.Consumer += "-" + stage
		}
		return o
	}
	runner := func(stage, stream string, h pipeline.Handler) *pipeline.Runner {
		return pipeline.NewRunner(rdb, keys, opts(stage, stream), h, log, metrics)
	}

	splitOpts := opts("split", pipeline.StreamCampaigns)
	dd := dedupe.New(dedupe.Config{Redis: rdb, Keys: keys, Log: log})
	var dh *deliver.Handler
	runners := []*pipeline.Runner{
		runner("ingest", pipeline.StreamIngest, ingest.New(ingest.Config{DB: db, Log: log, Metrics: g.Registry()})),
		runner("split", pipeline.StreamCampaigns, split.New(split.Config{Redis: rdb, DB: db, Keys: keys, Log: log,
			RangeSize: c.RangeSize, HighWater: 10000, MaxWait: splitOpts.ClaimIdle / 3})),
		runner("resolve", pipeline.StreamRanges, resolve.New(resolve.Config{Redis: rdb, DB: db, Keys: keys, Log: log, Parallel: 2})),
		runner("dedupe", pipeline.StreamDedupe, dd),
		// deliver acks its own batches, so it needs the runner's effective
		// options before it exists: the handler is bound after.
		runner("deliver", pipeline.StreamDeliver,
			pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error { return dh.Handle(ctx, b) })),
	}
	dd.Bind(runners[3].Options())
	eff := runners[4].Options()
	d := c.Deliver
	dh, err = deliver.New(deliver.Config{
		Redis: rdb, DB: db, Keys: keys, Senders: senders,
		Group: eff.Group, Consumer: eff.Consumer, Partitions: eff.Partitions, ClaimIdle: eff.ClaimIdle,
		TPS: d.TPS, InFlight: d.InFlight, MaxAttempts: d.MaxAttempts,
		RetryBase: d.RetryBase, RetryMax: d.RetryMax, RetryLease: d.RetryLease,
		Log: log, Metrics: g.Registry(),
	})
	if err != nil {
		return err
	}

	srv := api.New(api.Config{Redis: rdb, DB: db, Keys: keys, Log: log, Auth: auth, Metrics: g.Registry(),
		MaxBodyMemory: c.MaxBodyMemory, DeviceWriteRate: api.DefaultDeviceWriteRate})
	fns := []func(context.Context) error{
		func(ctx context.Context) error { return c.ListenFlags.serve(ctx, c.Listen, srv, log) },
		func(ctx context.Context) error {
			return pipeline.Serve(ctx, c.Deliver.HTTP, pipeline.OpsHandler(g.Registry(), stagesReady(rdb, runners)), log)
		},
		dh.Run, // deliver's retry poller
	}
	for _, r := range runners {
		fns = append(fns, r.Run)
	}
	log.Info().Str("api", c.Listen).Dur("claim_idle", c.Deliver.ClaimIdle).Msg("pushpipe all: API and every stage in one process")
	return pipeline.RunGroup(ctx, fns...)
}
