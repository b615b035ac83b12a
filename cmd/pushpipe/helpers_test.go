package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// testRedis starts a Redis for one test and returns it and a client of it.
func testRedis(t *testing.T) (*pipelinetest.Redis, rueidis.Client) {
	t.Helper()
	r := pipelinetest.RedisT(t, pipelinetest.RedisOptions{})
	rdb, err := pipeline.NewRedis(r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	return r, rdb
}

// env holds the PostgreSQL shared by the package's tests: a test that
// only talks to a database takes one of its own on it (testDatabase,
// pipelinetest.DatabaseT); a test that stops, kills or freezes PostgreSQL
// starts its own (pipelinetest.PostgresT). initdb was most of the
// package's time when each test started one.
var env *pipelinetest.Env

func TestMain(m *testing.M) {
	pipelinetest.Main(m, pipelinetest.EnvOptions{Postgres: true}, &env)
}

// testDatabase returns the URL of a migrated database of the test's own
// on the shared PostgreSQL, and a pool of it closed at the test's end.
func testDatabase(t *testing.T) (string, *pgxpool.Pool) {
	t.Helper()
	url := pipelinetest.MigratedDatabaseT(t, env.Postgres)
	db, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return url, db
}

// printedEvents parses what `results tail` printed, one event a line.
func printedEvents(t *testing.T, out string) []pipeline.ResultEvent {
	t.Helper()
	var evs []pipeline.ResultEvent
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var e pipeline.ResultEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("not an event: %q: %v", line, err)
		}
		evs = append(evs, e)
	}
	return evs
}
