package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/api"
	"github.com/pushpipe/pushpipe/stages/deliver"
)

// AllCmd runs the API and every stage in one process: a small deployment, or
// a laptop. Each stage is built by the same code and from the same flags as
// its own subcommand (runStages), sharing one Redis client, one PostgreSQL
// pool and one metrics registry.
type AllCmd struct {
	Listen         string `default:"127.0.0.1:8080" help:"Serve the API on this address."`
	InsecureNoAuth bool   `name:"insecure-no-auth" help:"Serve the API without authentication (a closed test network only)."`
	APIDBConns     int32  `name:"api-db-conns" default:"4" help:"PostgreSQL connections the API adds to the pool."`

	// The stage flags (consumer, claim idle...) apply to every stage; each
	// stage's own flags keep their names, prefixed with the stage's but for
	// deliver's (the providers, sink and rate).
	StageFlags   `embed:""`
	DeliverFlags `embed:""`
	Ingest       IngestFlags  `embed:"" prefix:"ingest-"`
	Split        SplitFlags   `embed:"" prefix:"split-"`
	Resolve      ResolveFlags `embed:"" prefix:"resolve-"`
	Dedupe       DedupeFlags  `embed:"" prefix:"dedupe-"`
	// The webhook runs only when --webhook-url is given (optional stage).
	Webhook WebhookFlags `embed:"" prefix:"webhook-"`
	// The API's connection and body memory caps.
	ListenFlags `embed:""`
}

// stages is every row of the stage table with its flags, less the optional
// stages not configured (the webhook without --webhook-url).
func (c *AllCmd) stages() map[string]stage {
	m := map[string]stage{"ingest": c.Ingest, "split": c.Split, "resolve": c.Resolve, "dedupe": c.Dedupe,
		"deliver": c.DeliverFlags}
	if c.Webhook.URL != "" {
		m["webhook"] = c.Webhook
	}
	return m
}

// Validate checks the stage flags and deliver's, which every stage here
// shares.
func (c *AllCmd) Validate() error {
	return errors.Join(c.StageFlags.Validate(), c.DeliverFlags.check())
}

// Run serves until SIGTERM.
func (c *AllCmd) Run(g *Globals) error {
	appKeys, err := api.ParseAppKeys(os.Getenv("PUSHPIPE_APP_KEYS"))
	if err != nil {
		return err
	}
	auth := api.Auth{AdminToken: os.Getenv("PUSHPIPE_ADMIN_TOKEN"), AppKeys: appKeys, Insecure: c.InsecureNoAuth}
	var known func(string) bool
	if c.Apps != "" {
		apps, err := deliver.LoadApps(c.Apps)
		if err != nil {
			return err
		}
		auth.FileKeys, known = apps.AppKeys(), apps.Known
	}
	if err := auth.Validate(); err != nil {
		return fmt.Errorf("all: %w", err)
	}
	stages := c.stages()
	for name := range stages {
		if _, ok := pipeline.StageNamed(name); !ok {
			return fmt.Errorf("all: %q is not in the stage table", name)
		}
	}
	for _, def := range pipeline.Stages {
		if _, ok := stages[def.Name]; !ok && !def.Optional {
			return fmt.Errorf("all: stage %s of the stage table is not wired", def.Name)
		}
	}
	if _, ok := stages["webhook"]; ok {
		// Its URL and secret file, before anything connects.
		if err := c.Webhook.check(); err != nil {
			return fmt.Errorf("all: webhook: %w", err)
		}
	}
	// The API shares the stages' clients and pool.
	srv := sidecar{dbConns: c.APIDBConns, build: func(d *deps) func(context.Context) error {
		h := api.New(api.Config{Redis: d.rdb, DB: d.db, Keys: d.keys, Log: d.log, Auth: auth, KnownApp: known, Metrics: d.reg,
			MaxBodyMemory: c.MaxBodyMemory, DeviceWriteRate: api.DefaultDeviceWriteRate})
		serve := func(ctx context.Context) error { return c.ListenFlags.serve(ctx, c.Listen, h, d.log) }
		if c.Apps == "" {
			return serve
		}
		reload := reloadAppsOnHUP(c.Apps, d.log, func(_ context.Context, apps deliver.Apps) error {
			return h.ReloadApps(apps.Known, apps.AppKeys())
		})
		return func(ctx context.Context) error { return pipeline.RunGroup(ctx, serve, reload) }
	}}
	log := g.Logger()
	log.Info().Str("api", c.Listen).Dur("claim_idle", c.ClaimIdle).Msg("pushpipe all: API and every stage in one process")
	return runStages(g, c.StageFlags, stages, srv)
}
