package bench

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pushpipe/pushpipe/bench/localserver"
	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/schema"
)

// ServerConfig says which Redis and PostgreSQL to use: the given addresses,
// or servers started here (pipelinetest) when they are empty.
type ServerConfig struct {
	RedisAddr string // host:port, several comma-separated for a cluster, or a redis:// or rediss:// URL
	// RedisAuth are the credentials of the given Redis (its Addr unused).
	RedisAuth     pipeline.RedisConfig
	DatabaseURL   string
	RedisCluster  int    // start a cluster of this many masters instead of one server (0: standalone)
	DataDir       string // keep the started servers' data here (dev); "" = temporary
	PostgresDir   string // with DataDir: PostgreSQL's directory, default DataDir/postgres (see DevPostgresDir)
	PostgresTuned bool   // start PostgreSQL with settings for bulk loads (bench)
	// Ports to try first for the servers started here (dev keeps them
	// across runs); 0 or taken: a free one.
	RedisPort, PostgresPort int
}

// RedisConfig is how to reach the run's Redis.
func (s *Servers) RedisConfig() pipeline.RedisConfig {
	c := s.RedisAuth
	c.Addr = s.RedisAddr
	return c
}

// RedisEnv is the environment a pushpipe process reaches the run's Redis
// with.
func (s *Servers) RedisEnv() []string {
	c := s.RedisConfig()
	env := []string{"PUSHPIPE_REDIS_ADDR=" + c.Addr}
	for _, kv := range [][2]string{
		{"PUSHPIPE_REDIS_USERNAME", c.Username}, {"PUSHPIPE_REDIS_PASSWORD", c.Password},
		{"PUSHPIPE_REDIS_TLS_CA_FILE", c.CAFile}, {"PUSHPIPE_REDIS_TLS_CERT_FILE", c.CertFile}, {"PUSHPIPE_REDIS_TLS_KEY_FILE", c.KeyFile},
	} {
		if kv[1] != "" {
			env = append(env, kv[0]+"="+kv[1])
		}
	}
	return env
}

// Servers are the Redis and PostgreSQL a run uses.
type Servers struct {
	RedisAddr   string
	RedisAuth   pipeline.RedisConfig // credentials, Addr unused (RedisConfig)
	DatabaseURL string               // a database of its own, migrated
	// PIDs of the servers started here, by name, for CPU and RSS sampling.
	PIDs map[string]int

	closers []func() error
}

// StartServers starts what is not given, creates a fresh database (a bench
// never touches an existing one's tables) and applies the migrations. With
// DataDir set (dev), the database "pushpipe" is reused instead.
func StartServers(ctx context.Context, cfg ServerConfig) (*Servers, error) {
	s := &Servers{RedisAddr: cfg.RedisAddr, RedisAuth: cfg.RedisAuth, PIDs: map[string]int{}}
	if err := s.startRedis(cfg); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	if err := s.startPostgres(ctx, cfg); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	if err := schema.Migrate(ctx, s.DatabaseURL); err != nil {
		return nil, errors.Join(fmt.Errorf("migrate: %w", err), s.Close())
	}
	return s, nil
}

func (s *Servers) startRedis(cfg ServerConfig) error {
	if s.RedisAddr != "" {
		return nil
	}
	if cfg.RedisCluster > 0 {
		c, err := localserver.StartCluster(cfg.RedisCluster)
		if err != nil {
			return err
		}
		s.closers = append(s.closers, c.Close)
		s.RedisAddr = strings.Join(c.Addrs, ",")
		for i, n := range c.Nodes {
			s.PIDs[fmt.Sprintf("redis-%d", i)] = redisPID(n.Addr)
		}
		return nil
	}
	// PUSHPIPE_TEST_REDIS secures the Redis a test starts (auth or tls).
	security, err := localserver.TestRedisSecurity()
	if err != nil {
		return err
	}
	opts := localserver.RedisOptions{Port: cfg.RedisPort, Security: security}
	if cfg.DataDir != "" {
		// dev keeps its data: with the AOF, streams, counters and marks
		// survive a restart like the PostgreSQL rows they go with.
		opts.Dir, opts.AOF = filepath.Join(cfg.DataDir, "redis"), true
	}
	r, err := localserver.StartRedis(opts)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, r.Close)
	s.RedisAddr = r.Addr
	c := r.Client
	s.RedisAuth = pipeline.RedisConfig{Username: c.Username, Password: c.Password, CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile}
	s.PIDs["redis"] = redisPID(r.Addr)
	return nil
}

func (s *Servers) startPostgres(ctx context.Context, cfg ServerConfig) error {
	base := cfg.DatabaseURL
	if base == "" {
		opts := localserver.PostgresOptions{Port: cfg.PostgresPort}
		if cfg.DataDir != "" {
			opts.Dir = cmp.Or(cfg.PostgresDir, filepath.Join(cfg.DataDir, "postgres"))
		}
		if cfg.PostgresTuned {
			// wal_level=minimal lets the seed's COPY FREEZE into freshly
			// truncated tables skip WAL. A 10M-user data set is larger
			// than the buffers (deliver's index alone is 2.2 GB), and
			// 80 % of that index's blocks are read from outside them once
			// (it is built beside the buffers, after the COPY); 4 GB
			// measured the same (2026-12-04: the same blocks read, no
			// less PostgreSQL CPU): a miss is an 8 kB copy from the OS's
			// cache, ~1 s of the run, not where its time goes.
			opts.Settings = map[string]string{
				"wal_level": "minimal", "max_wal_senders": "0",
				"shared_buffers": "1GB", "work_mem": "64MB", "maintenance_work_mem": "2GB",
				"max_wal_size": "8GB", "checkpoint_timeout": "30min",
				// per-statement times for the report's "where the time goes"
				"shared_preload_libraries": "pg_stat_statements",
			}
		}
		p, err := localserver.StartPostgres(opts)
		if err != nil {
			return err
		}
		s.closers = append(s.closers, p.Close)
		base = p.URL
		if pid, err := postmasterPID(p.Dir); err == nil {
			s.PIDs["postgres"] = pid
		}
	}
	name := "pushpipe"
	if cfg.DataDir == "" {
		name = "pushpipe_bench_" + randomHex(4)
	}
	u, err := withDatabase(base, name)
	if err != nil {
		return err
	}
	if err := createDatabase(ctx, base, name, cfg.DataDir != ""); err != nil {
		return err
	}
	if cfg.DataDir == "" {
		s.closers = append(s.closers, func() error { return dropDatabase(base, name) })
	}
	s.DatabaseURL = u
	return nil
}

// Close drops the bench database and stops the servers started here, in
// reverse order.
func (s *Servers) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	s.closers = nil
	return errors.Join(errs...)
}

func withDatabase(base, name string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("database url: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

func createDatabase(ctx context.Context, base, name string, reuse bool) error {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if reuse {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
			return fmt.Errorf("look up database %s: %w", name, err)
		}
		if exists {
			return nil
		}
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

func dropDatabase(base, name string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// postmasterPID reads the first line of the data directory's postmaster.pid.
func postmasterPID(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
