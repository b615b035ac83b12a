package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/schema"
)

// Globals are the settings every subcommand shares, by flag or environment.
type Globals struct {
	RedisAddr   string `name:"redis-addr" env:"PUSHPIPE_REDIS_ADDR" default:"127.0.0.1:6379" help:"Redis host:port, several comma-separated for a cluster, or a URL: redis://user:password@host:port, rediss:// for TLS."`
	RedisAuth   `embed:"" prefix:"redis-"`
	DatabaseURL string `name:"database-url" placeholder:"URL" env:"PUSHPIPE_DATABASE_URL" help:"PostgreSQL URL: postgres://user:password@host:port/db."`
	Partitions  int    `env:"PUSHPIPE_PARTITIONS" default:"16" help:"Partitions per stream (deploy-time constant), 1 to ${max_partitions}."`
	Prefix      string `env:"PUSHPIPE_PREFIX" default:"pp" help:"Redis key prefix."`
	LogLevel    string `placeholder:"LEVEL" env:"PUSHPIPE_LOG_LEVEL" help:"debug, info, warn or error (default info)."`

	ctx  context.Context
	once sync.Once
	log  zerolog.Logger
	reg  *prometheus.Registry
}

// RedisAuth are Redis's credentials beyond the address. The password comes
// from the environment or a file, never a flag, so it stays out of process
// listings.
type RedisAuth struct {
	Username     string `placeholder:"USER" env:"PUSHPIPE_REDIS_USERNAME" help:"Redis ACL user (the password is PUSHPIPE_REDIS_PASSWORD or the file of --redis-password-file)."`
	PasswordFile string `type:"path" placeholder:"FILE" env:"PUSHPIPE_REDIS_PASSWORD_FILE" help:"File holding the Redis password (instead of PUSHPIPE_REDIS_PASSWORD)."`
	TLSCAFile    string `name:"tls-ca-file" type:"path" placeholder:"FILE" env:"PUSHPIPE_REDIS_TLS_CA_FILE" help:"PEM CA that signed Redis's certificate; turns TLS on (default CAs: the system's, with a rediss:// address)."`
	TLSCertFile  string `name:"tls-cert-file" type:"path" placeholder:"FILE" env:"PUSHPIPE_REDIS_TLS_CERT_FILE" help:"PEM client certificate, for a Redis with tls-auth-clients."`
	TLSKeyFile   string `name:"tls-key-file" type:"path" placeholder:"FILE" env:"PUSHPIPE_REDIS_TLS_KEY_FILE" help:"PEM key of the client certificate."`
}

// RedisConfig is where Redis is and how to sign in.
func (g *Globals) RedisConfig() (pipeline.RedisConfig, error) {
	cfg := pipeline.RedisConfig{Addr: g.RedisAddr, Username: g.Username, Password: os.Getenv("PUSHPIPE_REDIS_PASSWORD"),
		CAFile: g.TLSCAFile, CertFile: g.TLSCertFile, KeyFile: g.TLSKeyFile}
	if g.PasswordFile != "" {
		b, err := os.ReadFile(g.PasswordFile)
		if err != nil {
			return cfg, fmt.Errorf("Redis password (PUSHPIPE_REDIS_PASSWORD_FILE): %w", err)
		}
		cfg.Password = strings.TrimRight(string(b), "\r\n")
	}
	return cfg, nil
}

// Validate refuses settings that would be quietly replaced: a log level the
// logger would not know (it would log at info and say nothing), and a
// partition count below 1 or an empty prefix, which pipeline.NewKeys turns
// into its defaults (16, "pp") — another deployment's keys than the
// operator set out to name. It refuses a count above pipeline.MaxPartitions.
func (g *Globals) Validate() error {
	var errs []error
	switch g.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level / PUSHPIPE_LOG_LEVEL: %q is not debug, info, warn or error", g.LogLevel))
	}
	if g.Partitions < 1 {
		errs = append(errs, fmt.Errorf("--partitions / PUSHPIPE_PARTITIONS must be at least 1 (the deployment's count; leave it out for %d), got %d",
			pipeline.DefaultPartitions, g.Partitions))
	}
	if g.Partitions > pipeline.MaxPartitions {
		errs = append(errs, fmt.Errorf("--partitions / PUSHPIPE_PARTITIONS must be at most %d: every stage process reads each partition "+
			"with a Redis connection of its own, and %d are 4 a master on 256 masters; got %d", pipeline.MaxPartitions, pipeline.MaxPartitions, g.Partitions))
	}
	if g.Prefix == "" {
		errs = append(errs, errors.New("--prefix / PUSHPIPE_PREFIX must not be empty (the deployment's Redis key prefix; leave it out for pp)"))
	}
	// Redis Cluster hashes a key by its first {...}: a prefix "pp{x}" put
	// every key in one slot, and "pp{}" hashed whole keys, so the keys of
	// one partition that a script touches together fell in different
	// slots (CROSSSLOT).
	if strings.ContainsAny(g.Prefix, "{}") {
		errs = append(errs, fmt.Errorf("--prefix / PUSHPIPE_PREFIX must not contain { or }: the keys' own hash tags (a partition's, a campaign's) "+
			"decide their cluster slot; got %q", g.Prefix))
	}
	return errors.Join(errs...)
}

// Logger is the process logger.
func (g *Globals) Logger() zerolog.Logger {
	g.once.Do(func() {
		g.log = pipeline.NewLogger(os.Stderr, g.LogLevel)
		g.reg = pipeline.NewRegistry()
	})
	return g.log
}

// Registry is the process's metrics registry.
func (g *Globals) Registry() *prometheus.Registry {
	g.Logger()
	return g.reg
}

// Context is cancelled on SIGINT or SIGTERM.
func (g *Globals) Context() context.Context {
	if g.ctx == nil {
		return context.Background()
	}
	return g.ctx
}

// Keys is the Redis key scheme.
func (g *Globals) Keys() pipeline.Keys { return pipeline.NewKeys(g.Prefix, g.Partitions) }

// Redis connects to Redis, retrying for up to 30 s so that servers (the
// API, stages) can start before it, and records the deployment's layout
// (partitions, bucket) or refuses to run with another (pipeline.CheckLayout).
func (g *Globals) Redis() (rueidis.Client, error) { return g.connectRedis(30*time.Second, true) }

// RedisNow connects to Redis for a short-lived command: an operator at a
// terminal wants to hear within 2 s that the address is wrong. It refuses a
// layout or prefix that is not the deployment's.
func (g *Globals) RedisNow() (rueidis.Client, error) { return g.connectRedis(2*time.Second, false) }

func (g *Globals) connectRedis(patience time.Duration, long bool) (rueidis.Client, error) {
	if !strings.Contains(g.RedisAddr, "://") {
		for _, a := range strings.Split(g.RedisAddr, ",") {
			if a = strings.TrimSpace(a); a == "" {
				continue
			}
			if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
				return nil, fmt.Errorf("Redis address %q is not host:port: set PUSHPIPE_REDIS_ADDR or --redis-addr "+
					"(host:port, several comma-separated for a cluster, or a redis:// or rediss:// URL)", a)
			}
		}
	}
	cfg, err := g.RedisConfig()
	if err != nil {
		return nil, err
	}
	if _, err := cfg.Options(); err != nil {
		return nil, err // a bad URL or TLS file: waiting will not fix it
	}
	deadline := time.Now().Add(patience)
	warned := false
	for {
		c, err := pipeline.NewRedisConfig(cfg)
		if err == nil {
			ctx, cancel := context.WithTimeout(g.Context(), 5*time.Second)
			err = pipeline.CheckLayout(ctx, c, g.Keys(), long, cfg.Where())
			cancel()
			if err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		}
		if isAuthError(err) {
			// Redis answered: the address is right and waiting will not
			// help. "no Redis at X after 30s", said at once, sent the
			// operator to check the address.
			return nil, fmt.Errorf("Redis at %s refused to sign this client in (set PUSHPIPE_REDIS_USERNAME, and PUSHPIPE_REDIS_PASSWORD or --redis-password-file): %w",
				cfg.Where(), err)
		}
		if time.Now().After(deadline) || g.Context().Err() != nil {
			// The time actually waited: a SIGTERM ends the wait early,
			// and an attempt that times out (5 s) outlasts a short one.
			waited := time.Since(deadline.Add(-patience)).Round(100 * time.Millisecond)
			if isTimeout(err) {
				// Something took the connection and said nothing: a hung
				// or swamped server, or packets dropped on the way. "No
				// Redis" sent the operator to look for a process that runs.
				return nil, fmt.Errorf("Redis at %s did not answer in %s: is it hung or overloaded, or is a firewall dropping the packets? (if the address is wrong, set PUSHPIPE_REDIS_ADDR or --redis-addr): %w",
					cfg.Where(), waited, err)
			}
			// Down or elsewhere: during an outage the address is right,
			// and "set PUSHPIPE_REDIS_ADDR" alone sent the operator to
			// check a setting that was fine.
			return nil, fmt.Errorf("no Redis at %s after %s: is it down, or elsewhere? (if elsewhere, set PUSHPIPE_REDIS_ADDR or --redis-addr, and the PUSHPIPE_REDIS_* credentials%s): %w",
				cfg.Where(), waited, devEnvHint(), err)
		}
		if long && !warned {
			// Said once, at the first failure: a server started without
			// Redis printed nothing for the 30 s of its wait, and a
			// newcomer's `pushpipe api` looked hung.
			warned = true
			log := g.Logger()
			log.Warn().Err(err).Str("redis", cfg.Where()).
				Msgf("Redis does not answer yet: waiting up to %s for it (if it is elsewhere, set PUSHPIPE_REDIS_ADDR or --redis-addr%s)", patience, devEnvHint())
		}
		select {
		case <-time.After(min(time.Second, patience/4)):
		case <-g.Context().Done():
		}
	}
}

// devEnvFile is where `pushpipe dev` (make dev) writes its addresses and
// tokens for other shells, relative to the checkout.
const devEnvFile = ".pushpipe/env"

// devEnvHint points a shell that set no PUSHPIPE_REDIS_ADDR, in a
// directory where `make dev` wrote its env file, at that file: a second
// shell opened beside `make dev` without sourcing it looked for Redis on
// 6379, and "set PUSHPIPE_REDIS_ADDR" did not say to what.
func devEnvHint() string {
	if os.Getenv("PUSHPIPE_REDIS_ADDR") != "" {
		return ""
	}
	if _, err := os.Stat(devEnvFile); err != nil {
		return ""
	}
	return "; for the make dev of this directory: source " + devEnvFile
}

// isTimeout is an attempt that got no answer in time, where a refused
// connection fails at once.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// isAuthError is a refusal retrying will not change: a wrong password, user
// or certificate.
func isAuthError(err error) bool {
	var re *rueidis.RedisError
	if errors.As(err, &re) {
		msg := re.Error()
		return strings.HasPrefix(msg, "WRONGPASS") || strings.HasPrefix(msg, "NOAUTH") || strings.HasPrefix(msg, "NOPERM")
	}
	var ce *tls.CertificateVerificationError
	return errors.As(err, &ce)
}

// errNoDatabase is every command's refusal to run without a database URL.
var errNoDatabase = errors.New("no database: set PUSHPIPE_DATABASE_URL or --database-url")

// DB opens the PostgreSQL pool and checks, within 5 s, that the server
// answers: a wrong URL fails the process at start with the host, port and
// user it tried (never the password), not at its first query. So does a
// schema older than this binary's (checkSchema).
func (g *Globals) DB(maxConns int32) (*pgxpool.Pool, error) {
	pool, err := g.openDB(maxConns)
	if err != nil {
		return nil, err
	}
	if err := g.checkSchema(pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// checkSchema refuses a database that `pushpipe migrate` has not brought to
// this binary's schema (deploy/README.md: the migrate Job first): started
// on it, a process fails the requests that name a newer column one by one
// (the API's rate PATCH and a retry of a stored id were 503s). A newer
// schema is a rollback's, which the migrations' expand/contract keeps
// working: said once, at info.
func (g *Globals) checkSchema(pool *pgxpool.Pool) error {
	ctx, cancel := context.WithTimeout(g.Context(), 5*time.Second)
	defer cancel()
	v, err := schema.ReadVersions(ctx, pool)
	if err != nil {
		return fmt.Errorf("PostgreSQL (PUSHPIPE_DATABASE_URL): %w", err)
	}
	if err := v.Check(); err != nil {
		return err
	}
	if v.Ahead() {
		log := g.Logger()
		log.Info().Int64("database", v.Database).Int64("binary", v.Binary).
			Msg("the database schema is newer than this pushpipe's (a rollback?): running on it")
	}
	return nil
}

// openDB is DB without the schema check: migrate's, which is what fixes it.
func (g *Globals) openDB(maxConns int32) (*pgxpool.Pool, error) {
	if g.DatabaseURL == "" {
		return nil, errNoDatabase
	}
	cfg, err := pgxpool.ParseConfig(g.DatabaseURL)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, errors.New("PUSHPIPE_DATABASE_URL is not a PostgreSQL URL (postgres://user:password@host:port/db)")
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
		// Opened at start, not on the first burst: a PostgreSQL
		// connection is a backend process forked and authenticated, and
		// deliver's first direct messages waited ~1 s on eight of them.
		cfg.MinConns = maxConns
	}
	cfg.ConnConfig.DialFunc = pgDialer(cfg.ConnConfig.ConnectTimeout)
	where := fmt.Sprintf("PostgreSQL at %s:%d as user %q", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.User)
	pool, err := pgxpool.NewWithConfig(g.Context(), cfg)
	if err != nil {
		return nil, fmt.Errorf("%s (PUSHPIPE_DATABASE_URL): %w", where, err)
	}
	ctx, cancel := context.WithTimeout(g.Context(), 5*time.Second)
	defer cancel()
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, dbRefusal(where, cfg.ConnConfig.Database, err)
	}
	return pool, nil
}

// dbRefusal says why PostgreSQL turned the connection down, when it said
// so, and what to do: "does not answer" for a server that answered "no such
// database" sent the operator to check the host and port.
func dbRefusal(where, database string, err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return onceErr{fmt.Errorf("%s does not answer: is PostgreSQL running there? Check PUSHPIPE_DATABASE_URL (or --database-url): %w", where, err)}
	}
	switch pe.Code {
	case "3D000": // invalid_catalog_name
		return fmt.Errorf("%s has no database %q: create it (createdb %s) or name another in PUSHPIPE_DATABASE_URL: %w", where, database, database, err)
	case "28000", "28P01": // invalid_authorization_specification, invalid_password
		return fmt.Errorf("%s refused the login: check the user and password in PUSHPIPE_DATABASE_URL (and pg_hba.conf): %w", where, err)
	case "53300": // too_many_connections
		return fmt.Errorf("%s has no connection to spare: lower the processes' --db-conns or raise max_connections: %w", where, err)
	case "57P03": // cannot_connect_now: starting up, shutting down, recovering
		return fmt.Errorf("%s is not accepting connections yet (starting or recovering); try again: %w", where, err)
	}
	return fmt.Errorf("%s refused the connection (check PUSHPIPE_DATABASE_URL): %w", where, err)
}

// onceErr is an error whose text says each of its lines once. pgx tries a
// URL without sslmode twice (TLS, then plain text) and lists both
// attempts' errors, and a failed lookup once as itself and once wrapped:
// `pushpipe migrate` printed the same dial error twice, which read as two
// problems. One line left is joined to the first.
type onceErr struct{ err error }

func (e onceErr) Unwrap() error { return e.err }

func (e onceErr) Error() string {
	lines := strings.Split(e.err.Error(), "\n")
	kept := lines[:1]
	for _, l := range lines[1:] {
		t := strings.TrimSpace(l)
		if !slices.ContainsFunc(kept[1:], func(k string) bool { return strings.HasSuffix(strings.TrimSpace(k), t) }) {
			kept = append(kept, l)
		}
	}
	if len(kept) == 2 {
		return strings.TrimRight(kept[0], " ") + " " + strings.TrimSpace(kept[1])
	}
	return strings.Join(kept, "\n")
}

// StageFlags are the flags every stage takes. Batch and concurrency default
// to the stage's own (pipeline.Stages); under `pushpipe all` a value given
// applies to every stage.
type StageFlags struct {
	Consumer           string `help:"Consumer name (default host-pid)."`
	Concurrency        int    `help:"Handlers running at once (default: each stage's own, which pushpipe STAGE --help shows)."`
	ExpressConcurrency int    `name:"express-concurrency" help:"Handlers that take express batches only, on top of --concurrency, in the stages with an express lane (default: each stage's own, which pushpipe STAGE --help shows)."`
	// ReadBatch is --batch. Kong finds it through the command's plugins
	// (stageCmd, AllCmd), not here: `pushpipe webhook` leaves it out, its
	// own --batch being events per POST (DESIGN).
	ReadBatch       `kong:"-"`
	ClaimIdle       time.Duration `default:"30s" help:"Take over another consumer's entries idle this long."`
	MaxDeliveries   int64         `placeholder:"N" help:"Dead-letter an entry delivered more often than this (default: the stage's own, 10; deliver's 100)."`
	HTTP            string        `name:"http" help:"Serve /metrics, /healthz and /readyz on this address."`
	ShutdownTimeout time.Duration `default:"10s" help:"On SIGTERM, let in-flight batches finish this long."`
	Retention       time.Duration `default:"24h" help:"Keep acknowledged entries this long (for replay)."`
}

// ReadBatch is the stage flag --batch: entries per XREADGROUP.
type ReadBatch struct {
	Batch int `help:"Entries read per XREADGROUP (default: each stage's own, which pushpipe STAGE --help shows)."`
}

// Validate refuses settings the runner would quietly replace by its defaults
// (a zero --claim-idle would become 30s), and a --claim-idle below the
// runner's floor, pipeline.MinClaimIdle (which it would raise it to): a
// batch is kept claimed every third of it, so 1ns panicked the runner at
// its first batch (a ticker of 0) and 1µs sent Redis a keep per batch
// without a pause.
func (f StageFlags) Validate() error {
	var errs []error
	if f.ClaimIdle < pipeline.MinClaimIdle {
		errs = append(errs, fmt.Errorf("--claim-idle must be %v or more, such as 30s (a batch in progress is kept claimed every third of it), got %v", pipeline.MinClaimIdle, f.ClaimIdle))
	}
	if f.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--shutdown-timeout must be a positive duration such as 10s, got %v", f.ShutdownTimeout))
	}
	if f.MaxDeliveries < 0 {
		errs = append(errs, fmt.Errorf("--max-deliveries must be at least 1 (or left out for the stage's own), got %d", f.MaxDeliveries))
	}
	// Each said of its flag, with its value: one sentence naming all three
	// left the operator to find which was wrong.
	for _, n := range []struct {
		flag string
		v    int
	}{{"--concurrency", f.Concurrency}, {"--express-concurrency", f.ExpressConcurrency}, {"--batch", f.Batch}} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("%s must be at least 1 (or left out for the stage's own), got %d", n.flag, n.v))
		}
	}
	return errors.Join(errs...)
}

// options turns the flags into runner options for a stage of the table.
func (f StageFlags) options(def pipeline.StageDef) pipeline.Options {
	o := def.Options()
	o.Consumer, o.ClaimIdle = f.Consumer, f.ClaimIdle
	if f.MaxDeliveries > 0 {
		o.MaxDeliveries = f.MaxDeliveries
	}
	o.ShutdownTimeout, o.Retention = f.ShutdownTimeout, f.Retention
	if f.Concurrency > 0 {
		o.Concurrency = f.Concurrency
	}
	if f.ExpressConcurrency > 0 {
		o.ExpressConcurrency = f.ExpressConcurrency
	}
	if f.Batch > 0 {
		o.BatchSize = f.Batch
	}
	return o
}
