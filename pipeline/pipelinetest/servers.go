package pipelinetest

import "github.com/pushpipe/pushpipe/bench/localserver"

// The servers are bench/localserver's; these names keep tests short.
type (
	Redis           = localserver.Redis
	RedisOptions    = localserver.RedisOptions
	Cluster         = localserver.Cluster
	Postgres        = localserver.Postgres
	PostgresOptions = localserver.PostgresOptions
	Env             = localserver.Env
	EnvOptions      = localserver.EnvOptions
)

var (
	StartRedis    = localserver.StartRedis
	StartCluster  = localserver.StartCluster
	StartPostgres = localserver.StartPostgres
	StartEnv      = localserver.StartEnv
	FreePort      = localserver.FreePort
	// TestRedisSecurity is PUSHPIPE_TEST_REDIS (auth, tls or ""): how the
	// end-to-end suites secure their Redis.
	TestRedisSecurity = localserver.TestRedisSecurity
)

// Redis security modes (RedisOptions.Security).
const (
	SecurityAuth = localserver.SecurityAuth
	SecurityTLS  = localserver.SecurityTLS
)

// Main is localserver.Main: for TestMain, starts the servers opts asks for,
// runs the tests, closes the servers and exits with the tests' code.
//
//	var env *pipelinetest.Env
//	func TestMain(m *testing.M) { pipelinetest.Main(m, pipelinetest.EnvOptions{Redis: true}, &env) }
//
// The pushpipe binary Binary built, if any, is removed after the tests, and
// the cluster SharedClusterT started, if any, is closed.
func Main(m interface{ Run() int }, opts EnvOptions, env **Env) {
	localserver.Main(runThenRemove{m}, opts, env)
}

// runThenRemove runs the tests, then removes the binary Binary built and
// closes the shared cluster.
type runThenRemove struct{ m interface{ Run() int } }

func (r runThenRemove) Run() int {
	defer removeBinary()
	shared.main = true
	code := r.m.Run()
	if !closeShared() && code == 0 {
		code = 1
	}
	return code
}
