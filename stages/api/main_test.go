package api

import (
	"testing"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// env holds the Redis and PostgreSQL servers shared by the package's tests;
// each test uses its own key prefix and database.
var env *pipelinetest.Env

func TestMain(m *testing.M) {
	pipelinetest.Main(m, pipelinetest.EnvOptions{Redis: true, Postgres: true}, &env)
}
