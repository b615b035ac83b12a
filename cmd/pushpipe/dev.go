package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mattn/go-isatty"

	"github.com/pushpipe/pushpipe/bench"
)

// DevCmd runs pushpipe locally: Redis and PostgreSQL (started from the system
// packages unless PUSHPIPE_REDIS_ADDR / PUSHPIPE_DATABASE_URL are set), the
// schema, demo users, the fake provider, the API and every stage as its own
// process, like a deployment; then it sends a demo campaign.
//
// The servers it starts are for this machine only: they listen on
// 127.0.0.1 without passwords, and their files are their owner's only
// (0700 directories, 0600 files).
type DevCmd struct {
	Listen string `default:"127.0.0.1:8080" help:"Serve the API on this address."`
	Users  int64  `default:"100000" help:"Demo users seeded into an empty database."`
	Data   string `default:".pushpipe" help:"Directory for the Redis and PostgreSQL started here, and the logs (as root, PostgreSQL's files go to /var/tmp/pushpipe-dev-HASH, where user postgres can reach them, linked from DATA/postgres)."`
	Once   bool   `help:"Exit (status 0) after the demo campaign's summary instead of serving until Ctrl-C."`
}

// Validate refuses, before any server is started, a --users that seeds
// nobody (-1 seeded nothing and the demo campaign had no one to send to)
// and an empty --data, which put the servers' files in the current
// directory itself.
func (c *DevCmd) Validate() error {
	var errs []error
	if c.Users < 1 {
		errs = append(errs, fmt.Errorf("--users: must be at least 1 demo user, got %d", c.Users))
	}
	if c.Data == "" {
		errs = append(errs, errors.New("--data: must name a directory for the servers' files and logs (leave it out for .pushpipe)"))
	}
	return errors.Join(errs...)
}

// Run serves until Ctrl-C (or the summary with --once).
func (c *DevCmd) Run(g *Globals) error {
	data, err := filepath.Abs(c.Data)
	if err != nil {
		return err
	}
	// A given Redis may want a password or TLS: the processes dev starts
	// reach it with the same credentials as this one.
	redisAuth, err := g.RedisConfig()
	if err != nil {
		return err
	}
	return bench.Dev(g.Context(), bench.DevConfig{
		Servers: bench.ServerConfig{RedisAddr: givenRedis(g), RedisAuth: redisAuth, DatabaseURL: g.DatabaseURL, DataDir: data},
		Users:   c.Users, Listen: c.Listen, Partitions: g.Partitions, Once: c.Once,
		Out: os.Stdout, Progress: isatty.IsTerminal(os.Stdout.Fd()),
	})
}
