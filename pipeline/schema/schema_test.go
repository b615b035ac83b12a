package schema_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/pipeline/schema"
)

var env *pipelinetest.Env

func TestMain(m *testing.M) {
	pipelinetest.Main(m, pipelinetest.EnvOptions{Postgres: true}, &env)
}

// Migrations apply on an empty database, again as a no-op, and concurrently
// from several processes (stages starting together) without conflict.
func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	ctx := context.Background()
	url := pipelinetest.DatabaseT(t, env.Postgres)
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- schema.Migrate(ctx, url) }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := schema.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, table := range []string{"devices", "subscriptions", "campaigns"} {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatalf("table %s: %v", table, err)
		}
	}
}
