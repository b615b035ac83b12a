package schema_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	conn := migrated(t, url)
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
	rep, err := schema.Apply(ctx, url)
	applied := rep.Applied
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
	if err != nil || len(again.Applied) != 0 || len(again.Rebuilt) != 0 {
		t.Fatalf("second Apply: %v, %+v; want nothing applied", err, again)
	}
}

// Migration 00010 keeps one row of APNs tokens that differ only in case,
// the latest event's, and lowers every APNs token (and a tombstone's of
// unknown platform that is one); FCM tokens, case-sensitive, stay as they
// are. The migration ran on the empty database; its statements are run
// again here over rows stored as the old code stored them.
func TestMigrationLowersAPNsTokens(t *testing.T) {
	ctx := context.Background()
	conn := migrated(t, pipelinetest.DatabaseT(t, env.Postgres))
	hex := func(c string) string { return strings.Repeat(c, 64) }
	type row struct {
		token    string
		platform int
		user     int64
		ago      int // event time, minutes ago
	}
	stored := []row{
		{hex("AB"), 1, 1, 10}, {hex("ab"), 1, 2, 5}, // the lowercase one is newer: user 2
		{hex("CD"), 1, 3, 5}, {hex("cd"), 1, 4, 10}, {hex("Cd"), 1, 5, 20}, // the uppercase one: user 3
		{hex("EF"), 1, 6, 1},                                       // alone: lowered
		{hex("0A"), 0, 7, 1},                                       // a tombstone of unknown platform: lowered
		{"fcmAB:APA91bXYZ", 2, 8, 1}, {"fcmab:APA91bXYZ", 2, 9, 1}, // FCM: two tokens
	}
	ids := map[string]int64{}
	for _, r := range stored {
		var id int64
		if err := conn.QueryRow(ctx, `INSERT INTO devices (app, token, user_id, platform, event_at)
			VALUES ('a', $1, $2, $3, now() - make_interval(mins => $4)) RETURNING id`, r.token, r.user, r.platform, r.ago).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[r.token] = id
	}
	up, err := os.ReadFile("migrations/00010_apns_token_case.sql")
	if err != nil {
		t.Fatal(err)
	}
	sql, _, _ := strings.Cut(string(up), "-- +goose Down")
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `SELECT token, user_id, id FROM devices WHERE app = 'a' ORDER BY token`)
	if err != nil {
		t.Fatal(err)
	}
	type device struct { // exported fields: pgx fills them by position
		Token    string
		User, ID int64
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[device])
	if err != nil {
		t.Fatal(err)
	}
	want := []device{
		{hex("0a"), 7, ids[hex("0A")]},
		{hex("ab"), 2, ids[hex("ab")]},
		{hex("cd"), 3, ids[hex("CD")]}, // the kept row's id: its sent marks stay
		{hex("ef"), 6, ids[hex("EF")]},
		{"fcmAB:APA91bXYZ", 8, ids["fcmAB:APA91bXYZ"]},
		{"fcmab:APA91bXYZ", 9, ids["fcmab:APA91bXYZ"]},
	}
	if !slices.Equal(got, want) {
		t.Errorf("devices after the migration:\n got %v\nwant %v", got, want)
	}
}

// migrated migrates the database at url (once more) and connects to it.
func migrated(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	if err := schema.Migrate(t.Context(), url); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
