package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/api"
)

// APICmd serves the HTTP API.
type APICmd struct {
	Listen         string `required:"" help:"Serve the API on this address (host:port)."`
	HTTP           string `name:"http" help:"Serve /metrics, /healthz and /readyz on this address."`
	InsecureNoAuth bool   `name:"insecure-no-auth" help:"Serve without authentication (a closed test network only)."`
	DBConns        int32  `name:"db-conns" default:"4" help:"PostgreSQL connections (the pool size, opened at start)."`
	Apps           string `name:"apps" placeholder:"FILE" help:"Apps file (TOML): the only apps this API knows, and their app keys: a device, campaign or message of another app is a 422, an app of PUSHPIPE_APP_KEYS too (its key still signs in); SIGHUP reloads it."`
	ListenFlags    `embed:""`
	RetentionFlags `embed:""`
}

// Validate refuses a pool size below 1 before anything connects.
func (c *APICmd) Validate() error { return dbConnsAtLeastOne("--db-conns", c.DBConns) }

// RetentionFlags are the API's retention of what it writes (api and all).
type RetentionFlags struct {
	KeepMessages time.Duration `name:"keep-messages" default:"24h" help:"Keep a direct message this long past its expiry, then purge it (GET is a 404 and its id free again); at least 24h, while Redis keeps its counts; 0 keeps them for ever."`
}

// Validate refuses a retention shorter than the message's counts in Redis:
// a new message under a purged one's id would find them.
func (f RetentionFlags) Validate() error {
	if f.KeepMessages != 0 && f.KeepMessages < campaign.MinKeepMessages {
		return fmt.Errorf("--keep-messages %s: at least %s (Redis keeps a message's counts that long, and a new message under its id would find them), or 0 to keep them for ever",
			f.KeepMessages, campaign.MinKeepMessages)
	}
	return nil
}

// config is cfg with the retention.
func (f RetentionFlags) config(cfg api.Config) api.Config {
	cfg.KeepMessages = f.KeepMessages
	return cfg
}

// Help is shown by `pushpipe api --help`: the settings that come only from
// the environment are listed nowhere else.
func (c *APICmd) Help() string { return fmt.Sprintf(apiEnvironment, apiDev) }

// apiEnvironment is the help of every command that serves the API (api,
// all): what it reads from the environment only, with %s for what only
// one of them reads.
const apiEnvironment = `Environment (credentials come only from it, so they never show in process listings):
  PUSHPIPE_ADMIN_TOKEN   the operator's bearer token: every endpoint (at least 16 characters)
  PUSHPIPE_APP_KEYS      app=key[,app=key...]: keys shipped inside apps, good for /v1/devices* of their app
%s  PUSHPIPE_REDIS_PASSWORD
                         Redis's password (or the file of --redis-password-file)
  PUSHPIPE_REDIS_ADDR, PUSHPIPE_DATABASE_URL, PUSHPIPE_PARTITIONS, PUSHPIPE_PREFIX, PUSHPIPE_LOG_LEVEL
                         the same as --redis-addr, --database-url, --partitions, --prefix, --log-level
The API's reference: GET /v1/openapi.json (any valid token); docs/API.md in the repository.`

// apiDev is PUSHPIPE_DEV's line of the API's help (api's and all's).
const apiDev = `  PUSHPIPE_DEV           set by pushpipe dev (not for production): the 422 of an unknown app names dev's app,
                         not PUSHPIPE_APP_KEYS, which dev sets itself
`

// Run serves until SIGTERM. Credentials come only from the environment
// (PUSHPIPE_ADMIN_TOKEN, PUSHPIPE_APP_KEYS), never from flags, so they do not
// show up in process listings.
func (c *APICmd) Run(g *Globals) error {
	env, err := readAPIEnv(c.InsecureNoAuth, c.Apps)
	if err != nil {
		return err
	}
	auth, file := env.auth, env.file
	if err := auth.Validate(); err != nil {
		return err
	}
	cfg, err := c.ListenFlags.limits(api.Config{}) // checked before Redis is dialled
	if err != nil {
		return err
	}
	log := g.Logger()
	if auth.Insecure {
		log.Warn().Msg("serving WITHOUT authentication (--insecure-no-auth)")
	}
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
	cfg.Redis, cfg.DB, cfg.Keys, cfg.Log, cfg.Auth, cfg.AppsFile, cfg.Metrics = rdb, db, g.Keys(), log, auth, file, g.Registry()
	cfg.Dev = env.dev
	srv := api.New(c.RetentionFlags.config(cfg))
	ready := pipeline.RedisReady(rdb)
	runners := []func(context.Context) error{srv.PurgeMessages}
	if c.Apps != "" {
		runners = append(runners, reloadAppsOnHUP(c.Apps, log, applyAPIApps(srv.ReloadApps)))
	}
	return pipeline.RunGroup(g.Context(), append(runners,
		func(ctx context.Context) error { return c.ListenFlags.serve(ctx, c.Listen, srv, log) },
		func(ctx context.Context) error {
			return pipeline.Serve(ctx, c.HTTP, pipeline.OpsHandler(g.Registry(), ready, log), log)
		})...,
	)
}

// apiEnv is what the API reads from the environment: its credentials
// (PUSHPIPE_ADMIN_TOKEN, PUSHPIPE_APP_KEYS, and the keys of the apps
// file, if any) and PUSHPIPE_DEV.
type apiEnv struct {
	auth api.Auth
	file *api.AppsFile
	// Set by pushpipe dev (bench.Dev), which sets PUSHPIPE_APP_KEYS too:
	// the 422 of an unknown app then names dev's app, not a variable.
	dev bool
}

// readAPIEnv is the one reader of the API's environment, for api and for
// all, which serves the same API in its process: all read the credentials
// alone, and in the shell of pushpipe dev's env file (PUSHPIPE_DEV set)
// its 422 of an unknown app advised editing the PUSHPIPE_APP_KEYS dev
// wrote, where api's named dev's app. The auth is not validated: each
// command says its refusal in its own words.
func readAPIEnv(insecure bool, appsFile string) (apiEnv, error) {
	appKeys, err := api.ParseAppKeys(os.Getenv("PUSHPIPE_APP_KEYS"))
	if err != nil {
		return apiEnv{}, err
	}
	env := apiEnv{auth: api.Auth{AdminToken: os.Getenv("PUSHPIPE_ADMIN_TOKEN"), AppKeys: appKeys, Insecure: insecure},
		dev: os.Getenv("PUSHPIPE_DEV") != ""}
	if appsFile != "" {
		if env.auth.FileKeys, env.file, err = loadAPIApps(appsFile); err != nil {
			return apiEnv{}, err
		}
	}
	return env, nil
}
