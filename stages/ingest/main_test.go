package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

var env *pipelinetest.Env

// TestMain doubles as an ingest stage process: with PUSHPIPE_INGEST_CHILD set,
// the test binary runs the stage until SIGTERM (see runChild), so the crash
// test can SIGKILL a real process.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	pipelinetest.Main(m, pipelinetest.EnvOptions{Redis: true, Postgres: true}, &env)
}

func testKeys() pipeline.Keys {
	return pipeline.NewKeys("t"+strconv.FormatUint(rand.Uint64(), 36), 16)
}

// testDB creates a fresh migrated database and returns its URL and a pool.
func testDB(t testing.TB, conns int32) (string, *pgxpool.Pool) {
	t.Helper()
	url := pipelinetest.MigratedDatabaseT(t, env.Postgres)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = conns
	db, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return url, db
}

func redisClient(t testing.TB, addr string) rueidis.Client {
	t.Helper()
	c, err := pipeline.NewRedis(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// apnsToken is a valid, distinct APNs token for n.
func apnsToken(n int) string { return fmt.Sprintf("%064x", n) }

// fcmToken is a valid, distinct FCM token for n.
func fcmToken(n int) string { return fmt.Sprintf("fcm-%d:APA91b%0140d", n, n) }

// row is a devices row as the tests compare it.
type row struct {
	User     int64
	Platform devices.Platform
	Locale   string
	State    devices.State
	At       int64
}

func (r row) String() string {
	return fmt.Sprintf("{user %d platform %d locale %q state %d at %d}", r.User, r.Platform, r.Locale, r.State, r.At)
}

// rowOf reads one device row; ok is false when there is none.
func rowOf(t testing.TB, db *pgxpool.Pool, app, token string) (row, bool) {
	t.Helper()
	var r row
	var at time.Time
	err := db.QueryRow(context.Background(), `SELECT user_id, platform, locale, state, event_at FROM devices WHERE app = $1 AND token = $2`,
		app, token).Scan(&r.User, &r.Platform, &r.Locale, &r.State, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return row{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	r.At = at.UnixMicro()
	return r, true
}

// allRows reads the whole devices table keyed by app+"/"+token.
func allRows(t testing.TB, db *pgxpool.Pool) map[string]row {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT app, token, user_id, platform, locale, state, event_at FROM devices`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]row{}
	var (
		app, token string
		r          row
		at         time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&app, &token, &r.User, &r.Platform, &r.Locale, &r.State, &at}, func() error {
		r.At = at.UnixMicro()
		out[app+"/"+token] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// model computes the expected devices table: within one batch the event
// with the latest time wins (the later entry at equal times), and it changes
// the row only if strictly newer, and then the row is what that event says.
type model map[string]row

func (m model) apply(batch ...devices.Event) {
	latest := map[string]devices.Event{}
	var order []string
	for _, e := range batch {
		k := e.App + "/" + e.Token
		prev, seen := latest[k]
		if !seen {
			order = append(order, k)
		}
		if !seen || e.At >= prev.At {
			latest[k] = e
		}
	}
	for _, k := range order {
		e := latest[k]
		cur, ok := m[k]
		if ok && e.At <= cur.At {
			continue
		}
		m[k] = row{User: e.User, Platform: e.Platform, Locale: e.Locale, State: e.State(), At: e.At}
	}
}

// sameTable fails unless the devices table equals the model exactly.
func sameTable(t testing.TB, db *pgxpool.Pool, want model) {
	t.Helper()
	got := allRows(t, db)
	var diffs []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: missing, want %v", k, w))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s: got %v, want %v", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: unexpected row %v", k, g))
		}
	}
	if len(diffs) > 0 {
		t.Fatalf("devices table differs in %d of %d rows, e.g.:\n%s", len(diffs), len(want), strings.Join(diffs[:min(len(diffs), 10)], "\n"))
	}
}

// outstanding is the ingest group's unread + unacked entries.
func outstanding(t testing.TB, c rueidis.Client, keys pipeline.Keys) int64 {
	t.Helper()
	n, err := pipeline.Outstanding(context.Background(), c, keys.Streams(pipeline.StreamIngest), "ingest")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// pending is the number of entries read by the ingest group but not acked.
func pending(t testing.TB, c rueidis.Client, keys pipeline.Keys) int64 {
	t.Helper()
	groups, err := pipeline.StreamGroups(context.Background(), c, keys.Streams(pipeline.StreamIngest))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, gs := range groups {
		for _, g := range gs {
			if g.Name == "ingest" {
				n += g.Pending
			}
		}
	}
	return n
}
