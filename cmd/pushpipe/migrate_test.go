package main

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// `pushpipe migrate` without PUSHPIPE_DATABASE_URL refuses, as every
// command does, rather than migrate the database the PG* variables name.
func TestMigrateNeedsDatabaseURL(t *testing.T) {
	url := pipelinetest.DatabaseT(t, env.Postgres)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"PGHOST": cfg.Host, "PGPORT": strconv.Itoa(int(cfg.Port)), "PGUSER": cfg.User,
		"PGPASSWORD": cfg.Password, "PGDATABASE": cfg.Database, "PGSSLMODE": "disable", "PUSHPIPE_DATABASE_URL": ""} {
		t.Setenv(k, v)
	}
	cli := parse(t, "migrate")
	if err := cli.Migrate.Run(&cli.Globals); err == nil || !strings.Contains(err.Error(), "no database: set PUSHPIPE_DATABASE_URL") {
		t.Errorf("migrate without a URL: %v, want the refusal naming PUSHPIPE_DATABASE_URL", err)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var table *string
	if err := conn.QueryRow(t.Context(), "SELECT to_regclass('campaigns')::text").Scan(&table); err != nil {
		t.Fatal(err)
	}
	if table != nil {
		t.Errorf("the database of the PG* variables was migrated (it has %s)", *table)
	}
}

// `pushpipe migrate` against a PostgreSQL that does not answer names the
// server and the variable to check, as every other command does.
func TestMigrateNamesTheDatabaseItCannotReach(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	tests := []struct {
		name, url, want string
	}{
		{"closed port", "postgres://pushpipe:pw@" + addr + "/x?sslmode=disable", "does not answer: is PostgreSQL running there? Check PUSHPIPE_DATABASE_URL (or --database-url)"},
		// sslmode=prefer, the default: pgx tries TLS, then plain text, and
		// listed the same refusal twice.
		{"closed port, TLS tried first", "postgres://pushpipe:pw@" + addr + "/x", "connect: connection refused"},
		{"not a URL", "postgres://pushpipe:pw@" + addr + ":99999/x", "PUSHPIPE_DATABASE_URL is not a PostgreSQL URL"},
		{"answers", pipelinetest.DatabaseT(t, env.Postgres), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli := parse(t, "migrate", "--database-url", tt.url)
			err := cli.Migrate.Run(&cli.Globals)
			if tt.want == "" {
				if err != nil {
					t.Errorf("migrate: %v", err)
				}
				return
			}
			if err == nil || strings.Count(err.Error(), tt.want) != 1 || strings.Contains(err.Error(), ":pw@") {
				t.Errorf("migrate: %v, want %q once and no password", err, tt.want)
			}
		})
	}
}
