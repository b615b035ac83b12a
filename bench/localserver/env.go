package localserver

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// ClusterMasters is the cluster size Env (and localserver.ClusterT) use.
const ClusterMasters = 3

// Env holds the servers shared by all tests of one package.
type Env struct {
	Redis    *Redis
	Cluster  *Cluster
	Postgres *Postgres
}

// EnvOptions selects the servers StartEnv starts.
type EnvOptions struct {
	Redis, Cluster, Postgres bool
}

// StartEnv starts the requested servers concurrently (cluster creation
// takes a few seconds, so starting them one by one would add up). On error,
// whatever did start is closed again.
func StartEnv(opts EnvOptions) (*Env, error) {
	env := &Env{}
	var wg sync.WaitGroup
	var redisErr, clusterErr, postgresErr error
	if opts.Redis {
		wg.Go(func() { env.Redis, redisErr = StartRedis(RedisOptions{}) })
	}
	if opts.Cluster {
		wg.Go(func() { env.Cluster, clusterErr = StartCluster(ClusterMasters) })
	}
	if opts.Postgres {
		wg.Go(func() { env.Postgres, postgresErr = StartPostgres(PostgresOptions{}) })
	}
	wg.Wait()
	if err := errors.Join(redisErr, clusterErr, postgresErr); err != nil {
		return nil, errors.Join(err, env.Close())
	}
	return env, nil
}

// Close stops every server in the environment; nil fields are skipped.
func (e *Env) Close() error {
	var errs []error
	if e.Redis != nil {
		errs = append(errs, e.Redis.Close())
	}
	if e.Cluster != nil {
		errs = append(errs, e.Cluster.Close())
	}
	if e.Postgres != nil {
		errs = append(errs, e.Postgres.Close())
	}
	return errors.Join(errs...)
}

// Main is meant for TestMain: it starts the servers opts asks for, stores
// them in *env, runs the tests, closes the servers and exits with the tests'
// code. If a server cannot start, it prints why and exits 1: a missing
// server is a broken setup, never a reason to skip.
//
//	var env *localserver.Env
//	func TestMain(m *testing.M) { localserver.Main(m, localserver.EnvOptions{Redis: true}, &env) }
func Main(m interface{ Run() int }, opts EnvOptions, env **Env) {
	e, err := StartEnv(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "localserver: %v\n", err)
		os.Exit(1)
	}
	if env != nil {
		*env = e
	}
	code := m.Run()
	if err := e.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "localserver: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
