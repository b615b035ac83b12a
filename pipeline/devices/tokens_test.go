package devices

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

var env *pipelinetest.Env

func TestMain(m *testing.M) {
	pipelinetest.Main(m, pipelinetest.EnvOptions{Postgres: true}, &env)
}

// testDB is a fresh migrated database.
func testDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	_, db := pipelinetest.MigratedT(t, env.Postgres)
	return db
}

func TestValidTokens(t *testing.T) {
	db := testDB(t)
	ctx := t.Context()
	_, err := db.Exec(ctx, `INSERT INTO devices (app, token, user_id, platform, state, event_at, locale) VALUES
		('news', 'a1', 1, 1, 0, now(), 'ko-KR'), ('news', 'a2', 1, 2, 0, now(), 'pt_BR'),
		('news', 'b1', 2, 2, 1, now(), ''),          -- deleted
		('news', 'c1', 3, 1, 2, now(), ''),          -- invalidated
		('news', 'd1', 4, 2, 0, now(), ''),
		('sport', 'e1', 1, 1, 0, now(), '')          -- another app`)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int64{}
	rows, err := db.Query(ctx, `SELECT token, id FROM devices`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var tok string
		var id int64
		if err := rows.Scan(&tok, &id); err != nil {
			t.Fatal(err)
		}
		ids[tok] = id
	}
	want := []Device{{1, IOS, "a1", ids["a1"], "ko-KR"}, {1, Android, "a2", ids["a2"], "pt_BR"}, {4, Android, "d1", ids["d1"], ""}}
	// Dense users are read as one span of the index, sparse ones by a probe
	// per user; repeats and disorder in the input change nothing.
	for _, users := range [][]int64{{1, 2, 3, 4, 5}, {5, 4, 1, 1, 3, 2}, {1, 4, 1000, 2000, 1 << 40}, {4, 1}} {
		got, err := ValidTokens(ctx, db, "news", users)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, func(a, b Device) int { return strings.Compare(a.Token, b.Token) })
		if !slices.Equal(got, want) {
			t.Fatalf("users %v: got %+v, want %+v", users, got, want)
		}
	}
	// Over the simple protocol the numbers come as text: same answer.
	cfg := db.Config().Copy()
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	simple, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer simple.Close()
	for _, users := range [][]int64{{1, 2, 3, 4, 5}, {1, 4, 1000, 2000, 1 << 40}} {
		got, err := ValidTokens(ctx, simple, "news", users)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, func(a, b Device) int { return strings.Compare(a.Token, b.Token) })
		if !slices.Equal(got, want) {
			t.Fatalf("simple protocol, users %v: got %+v, want %+v", users, got, want)
		}
	}
	if ids["a1"] == 0 || ids["a1"] == ids["a2"] {
		t.Fatalf("device ids %v: want distinct and set", ids)
	}
	if got, err := ValidTokens(ctx, db, "news", nil); err != nil || len(got) != 0 {
		t.Fatalf("no users: got %v, %v", got, err)
	}
}

// The query deliver runs per batch of users is answered from the covering
// partial index alone: an index-only scan without heap fetches once the table
// is vacuumed (autovacuum keeps the visibility map current in production).
func TestValidTokensIsIndexOnlyScan(t *testing.T) {
	db := testDB(t)
	ctx := t.Context()
	// 200k devices of 150k users in two apps, a tenth of them tombstones.
	// Committed durably: VACUUM marks a page all-visible only once the hint
	// bits of its rows are set, which waits for the commit record to be
	// flushed (the test server runs with synchronous_commit off).
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = on`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO devices (app, token, user_id, platform, state, event_at)
			SELECT CASE WHEN i % 5 = 0 THEN 'sport' ELSE 'news' END, md5(i::text) || md5((-i)::text),
			       1 + (i * 7919) % 150000, 1 + i % 2, CASE WHEN i % 10 = 3 THEN 1 ELSE 0 END, now()
			FROM generate_series(1, 200000) AS i`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `VACUUM ANALYZE devices`); err != nil {
		t.Fatal(err)
	}
	users := make([]int64, 1000)
	for i := range users {
		users[i] = int64(1 + i*149 + i%7) // a mix of both apps and states
	}
	plan := explain(t, db, `EXPLAIN (ANALYZE, COSTS OFF) `+validTokensSQL, "news", users)
	if !strings.Contains(plan, "Index Only Scan using devices_app_user_active") || !strings.Contains(plan, "Heap Fetches: 0") {
		t.Fatalf("want an index-only scan of devices_app_user_active without heap fetches, got:\n%s", plan)
	}
	t.Logf("plan for 1000 users of 200k devices:\n%s", plan)
	// The same users of the app of a campaign (deliver's first batch of
	// it, campaign.QueueTokens): the app comes from the row, and the
	// scan is the same.
	if _, err := db.Exec(ctx, `INSERT INTO campaigns (id, app, channels, title, body, data) VALUES ('c-news', 'news', '{}', 't', 'b', '{}')`); err != nil {
		t.Fatal(err)
	}
	plan = explain(t, db, `EXPLAIN (ANALYZE, COSTS OFF) `+validTokensOfAppSQL(`(SELECT app FROM campaigns WHERE id = $1)`), "c-news", users)
	if !strings.Contains(plan, "Index Only Scan using devices_app_user_active") || !strings.Contains(plan, "Heap Fetches: 0") {
		t.Fatalf("want the tokens of a campaign's app read as an index-only scan of devices_app_user_active without heap fetches, got:\n%s", plan)
	}
	plan = explain(t, db, `EXPLAIN (ANALYZE, COSTS OFF) `+validTokensRangeSQL, "news", int64(1000), int64(2000))
	if !strings.Contains(plan, "Index Only Scan using devices_app_user_active") || !strings.Contains(plan, "Heap Fetches: 0") {
		t.Fatalf("want the span read as an index-only scan of devices_app_user_active without heap fetches, got:\n%s", plan)
	}
	// ingest's purge of tombstones past the horizon walks their own index
	// (retention.go), not the table every minute.
	plan = explain(t, db, `EXPLAIN (COSTS OFF) `+purgeTombstonesSQL, time.Now().Add(-30*24*time.Hour), 5000)
	if !strings.Contains(plan, "devices_tombstones") {
		t.Fatalf("want the tombstone purge to read the devices_tombstones index, got:\n%s", plan)
	}
	got, err := ValidTokens(ctx, db, "news", users)
	if err != nil {
		t.Fatal(err)
	}
	var want int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM devices WHERE app = 'news' AND state = 0 AND user_id = ANY($1)`, users).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if len(got) != want || want < 500 {
		t.Fatalf("got %d devices, want %d", len(got), want)
	}
	// Every other user of two spans: read as the spans, the rest skipped.
	dense := make([]int64, 0, 1000)
	for u := int64(5000); u < 6000; u += 2 {
		dense = append(dense, u, u+20000)
	}
	got, err = ValidTokens(ctx, db, "news", dense)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(ctx, `SELECT count(*) FROM devices WHERE app = 'news' AND state = 0 AND user_id = ANY($1)`, dense).Scan(&want); err != nil {
		t.Fatal(err)
	}
	for _, d := range got {
		if d.UserID%2 != 0 || d.UserID < 5000 || d.UserID >= 6000 && d.UserID < 25000 || d.UserID >= 26000 {
			t.Fatalf("device of user %d was not asked for", d.UserID)
		}
	}
	if len(got) != want || want < 500 {
		t.Fatalf("dense users: got %d devices, want %d", len(got), want)
	}
}

func explain(t *testing.T, db *pgxpool.Pool, sql string, args ...any) string {
	t.Helper()
	rows, err := db.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func TestSpans(t *testing.T) {
	tests := []struct {
		give     []int64
		lo, hi   []int64
		wantGaps bool
	}{
		{[]int64{1, 2, 3}, []int64{1}, []int64{3}, false},
		{[]int64{1, 3, 11}, []int64{1}, []int64{11}, true},
		{[]int64{1, 2, 20, 21, 40}, []int64{1, 20, 40}, []int64{2, 21, 40}, false},
		{[]int64{5}, []int64{5}, []int64{5}, false},
	}
	for _, tt := range tests {
		lo, hi, gaps := spans(tt.give)
		if !slices.Equal(lo, tt.lo) || !slices.Equal(hi, tt.hi) || gaps != tt.wantGaps {
			t.Errorf("spans(%v) = %v %v %v, want %v %v %v", tt.give, lo, hi, gaps, tt.lo, tt.hi, tt.wantGaps)
		}
	}
}
