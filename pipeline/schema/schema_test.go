package schema_test

import (
	"context"
	"path/filepath"
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

// Apply reports each migration it runs (what `pushpipe migrate` logs), in
// order, and none once the schema is up to date.
func TestApplyReportsEachMigration(t *testing.T) {
	ctx := context.Background()
	url := pipelinetest.DatabaseT(t, env.Postgres)
	applied, err := schema.Apply(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(files) || len(files) == 0 {
		t.Fatalf("applied %d migrations on an empty database, the package has %d", len(applied), len(files))
	}
	for i, m := range applied {
		if m.File != filepath.Base(files[i]) || m.Version <= 0 || (i > 0 && m.Version <= applied[i-1].Version) {
			t.Errorf("migration %d: %+v, want %s in order", i, m, filepath.Base(files[i]))
		}
	}
	again, err := schema.Apply(ctx, url)
	if err != nil || len(again) != 0 {
		t.Fatalf("second Apply: %v, %+v; want nothing applied", err, again)
	}
}
