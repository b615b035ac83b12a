package main

import (
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

// testDatabase starts a PostgreSQL for one test and returns the URL of a
// migrated database on it and a pool of it.
func testDatabase(t *testing.T) (string, *pgxpool.Pool) {
	t.Helper()
	return pipelinetest.MigratedT(t, pipelinetest.PostgresT(t))
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
