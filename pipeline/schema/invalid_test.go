package schema_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/pipeline/schema"
)

// A concurrent index build that stops half way (a statement_timeout, a
// cancel, the migrate Job's pod killed while it waits for an old stage's
// transaction) leaves the index behind INVALID, unused by every query but
// still written. goose records the migration only once every statement
// ran, so the next migrate runs it again; but CREATE INDEX CONCURRENTLY IF
// NOT EXISTS then skips the name and the index stayed invalid for good.
// The next migrate rebuilds it, and says so.
func TestMigrateRebuildsAnInterruptedIndex(t *testing.T) {
	tests := []struct {
		name    string
		version int64  // the migration that builds it
		index   string // what the build leaves invalid
		blocker string // a write held open while it builds
	}{
		{"retention", 12, "devices_tombstones",
			`INSERT INTO devices (app, token, user_id, platform, event_at) VALUES ('a', 'tok', 1, 1, now())`},
		{"campaigns active", 13, "campaigns_active",
			`INSERT INTO campaigns (id, app, channels, kind, state) VALUES ('c', 'a', '{}', 'campaign', 'running')`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			url := pipelinetest.DatabaseT(t, env.Postgres)
			conn := migrated(t, url)
			// Back to the schema before the migration, as an older release
			// left it.
			if err := schema.DownTo(ctx, url, tt.version-1); err != nil {
				t.Fatal(err)
			}
			// A stage's write in progress: the build waits for it, and
			// the timeout stops the build with the index half made.
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, tt.blocker); err != nil {
				t.Fatal(err)
			}
			sep := "?"
			if strings.Contains(url, "?") {
				sep = "&"
			}
			if _, err := schema.Apply(ctx, url+sep+"statement_timeout=1000"); err == nil {
				t.Fatal("migrate under a 1 s statement_timeout finished with a write held open")
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			if valid := indexValid(t, conn, tt.index); valid {
				t.Fatalf("%s valid after the interrupted build: the drill interrupted nothing", tt.index)
			}
			rep, err := schema.Apply(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			if !indexValid(t, conn, tt.index) {
				t.Errorf("%s still invalid after migrate ran again", tt.index)
			}
			rows, _ := conn.Query(ctx, `SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid`)
			invalid, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			if len(invalid) > 0 {
				t.Errorf("invalid indexes after migrate: %v", invalid)
			}
			if len(rep.Rebuilt) != 1 || rep.Rebuilt[0] != tt.index {
				t.Errorf("migrate reported rebuilt %v, want [%s]", rep.Rebuilt, tt.index)
			}
			if len(rep.Applied) == 0 || rep.Applied[0].Version != tt.version {
				t.Errorf("migrate applied %+v, want from %d on", rep.Applied, tt.version)
			}
		})
	}
}

// indexValid reads whether PostgreSQL uses the named index (pg_index.indisvalid).
func indexValid(t *testing.T, conn *pgx.Conn, name string) bool {
	t.Helper()
	var valid bool
	if err := conn.QueryRow(context.Background(),
		`SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1`, name).Scan(&valid); err != nil {
		t.Fatalf("index %s: %v", name, err)
	}
	return valid
}
