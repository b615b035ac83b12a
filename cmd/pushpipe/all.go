package main

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/api"
)

// AllCmd runs the API and every stage in one process: a small deployment, or
// a laptop. Each stage is built by the same code and from the same flags as
// its own subcommand (runStages, the registry), sharing one Redis client,
// one PostgreSQL pool and one metrics registry.
type AllCmd struct {
	Listen         string `default:"127.0.0.1:8080" help:"Serve the API on this address."`
	InsecureNoAuth bool   `name:"insecure-no-auth" help:"Serve the API without authentication (a closed test network only)."`
	APIDBConns     int32  `name:"api-db-conns" default:"4" help:"PostgreSQL connections the API adds to the pool."`

	// The stage flags (consumer, claim idle, --batch...) apply to every
	// stage.
	StageFlags `embed:""`
	// --batch (StageFlags.ReadBatch), then each stage's own flags, which
	// keep their names, prefixed with the stage's (--split-range-size,
	// --webhook-batch) but for deliver's (the providers, sink and rate).
	// An Optional stage runs only when configured (the webhook with
	// --webhook-url).
	kong.Plugins
	// The API's limits: connections, bodies, device writes.
	ListenFlags `embed:""`
	// The API's retention of direct messages.
	RetentionFlags `embed:""`

	own map[string]stage // the plugins' flags by stage
}

func newAllCmd() *AllCmd {
	c := &AllCmd{}
	var own kong.Plugins
	own, c.own = ownFlags()
	c.Plugins = append(kong.Plugins{&c.ReadBatch}, own...)
	return c
}

// stages is every row of the stage table with its flags, less the optional
// stages not configured.
func (c *AllCmd) stages() map[string]stage {
	m, _ := wired(c.own)
	return m
}

// deliver is deliver's flags: the API reads its apps file too.
func (c *AllCmd) deliver() *DeliverFlags { return c.own["deliver"].(*DeliverFlags) }

// Help is shown by `pushpipe all --help`: its API reads the same
// credentials from the environment as `pushpipe api`.
func (c *AllCmd) Help() string { return fmt.Sprintf(apiEnvironment, apiDev) }

// Validate checks the flags of every stage all runs (kong checks
// StageFlags itself), and refuses an Optional stage's flags given without
// the one that configures it: the stage would not run, and they would be
// dropped without a word.
func (c *AllCmd) Validate(kctx *kong.Context) error {
	stages, err := wired(c.own)
	errs := []error{err, dbConnsAtLeastOne("--api-db-conns", c.APIDBConns)}
	for _, def := range pipeline.Stages {
		if s, ok := stages[def.Name]; ok {
			if err := check(def, s); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", def.Name, allNames(err, def.Name, s)))
			}
		} else if cf, ok := c.own[def.Name].(configurable); ok {
			errs = append(errs, unconfigured(kctx, def.Name, cf.configuredBy()))
		}
	}
	return errors.Join(errs...)
}

// allNames renames, in err's text, the flags of stage's own set (s) to the
// names all gives them: a stage's checks name its flags as its subcommand
// has them, and under all "--batch" or "--retry-base" is another stage's
// flag, "--secret-file" none at all. A stage whose flags all leaves
// unprefixed (deliver) keeps err.
func allNames(err error, stage string, s stage) error {
	if registry[stage].bare {
		return err
	}
	t := reflect.TypeOf(s)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var names []string
	for i := range t.NumField() {
		if n := t.Field(i).Tag.Get("name"); n != "" {
			names = append(names, regexp.QuoteMeta(n))
		}
	}
	if len(names) == 0 {
		return err
	}
	// Longest first, and a name ends where no name character follows: so
	// --retry is never read inside --retry-base.
	slices.SortFunc(names, func(a, b string) int { return len(b) - len(a) })
	re := regexp.MustCompile(`--(` + strings.Join(names, "|") + `)([^a-z0-9-]|$)`)
	msg := re.ReplaceAllString(err.Error(), "--"+stage+"-${1}${2}")
	if msg == err.Error() {
		return err
	}
	return errors.New(msg) // a new text: the wrapped one names flags all does not have
}

// unconfigured refuses the flags of stage (prefixed with its name) given on
// the command line when by, the flag that configures it, was not.
func unconfigured(kctx *kong.Context, stage, by string) error {
	var given []string
	for _, p := range kctx.Path {
		if p.Flag != nil && strings.HasPrefix(p.Flag.Name, stage+"-") && p.Flag.Name != stage+"-"+by {
			given = append(given, "--"+p.Flag.Name)
		}
	}
	if len(given) == 0 {
		return nil
	}
	return fmt.Errorf("%s given, but --%s-* flags need --%s-%s: without it the %s stage does not run",
		strings.Join(given, ", "), stage, stage, by, stage)
}

// Run serves until SIGTERM.
func (c *AllCmd) Run(g *Globals) error {
	appsFile := c.deliver().Apps
	env, err := readAPIEnv(c.InsecureNoAuth, appsFile)
	if err != nil {
		return err
	}
	auth, file := env.auth, env.file
	if err := auth.Validate(); err != nil {
		return fmt.Errorf("all: %w", err)
	}
	cfg, err := c.ListenFlags.limits(api.Config{}) // checked before Redis is dialled
	if err != nil {
		return fmt.Errorf("all: %w", err)
	}
	// The API shares the stages' clients and pool.
	srv := sidecar{dbConns: c.APIDBConns, build: func(d *deps) func(context.Context) error {
		cfg.Redis, cfg.DB, cfg.Keys, cfg.Log, cfg.Auth, cfg.AppsFile, cfg.Metrics = d.rdb, d.db, d.keys, d.log, auth, file, d.reg
		cfg.Dev = env.dev
		h := api.New(c.RetentionFlags.config(cfg))
		listen := func(ctx context.Context) error { return c.ListenFlags.serve(ctx, c.Listen, h, d.log) }
		serve := func(ctx context.Context) error { return pipeline.RunGroup(ctx, listen, h.PurgeMessages) }
		if appsFile == "" {
			return serve
		}
		if c.deliver().Sink != "null" {
			// Deliver reloads the file for both (built after this).
			c.deliver().alsoApps = apiApps{h}
			return serve
		}
		reload := reloadAppsOnHUP(appsFile, d.log, applyAPIApps(h.ReloadApps))
		return func(ctx context.Context) error { return pipeline.RunGroup(ctx, serve, reload) }
	}}
	log := g.Logger()
	log.Info().Str("api", c.Listen).Dur("claim_idle", c.ClaimIdle).Msg("pushpipe all: API and every stage in one process")
	return runStages(g, c.StageFlags, c.stages(), srv)
}
