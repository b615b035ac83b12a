package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

func (a *deviceAPI) subscribers(channel string) []int64 {
	a.t.Helper()
	rows, err := a.db.Query(context.Background(), `SELECT user_id FROM subscriptions WHERE channel = $1 ORDER BY user_id`, channel)
	if err != nil {
		a.t.Fatal(err)
	}
	var out []int64
	for rows.Next() {
		var u int64
		if err := rows.Scan(&u); err != nil {
			a.t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

func TestSubscriptionsAreIdempotent(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{AdminToken: "op"})
	for range 2 {
		for _, u := range []string{"42", "7"} {
			if r := a.do("PUT", "/v1/channels/breaking.news:eu-1/subscribers/"+u, "", "op"); r.status != http.StatusNoContent {
				t.Fatalf("subscribe: got %d %s", r.status, r.body)
			}
		}
	}
	if got := a.subscribers("breaking.news:eu-1"); len(got) != 2 || got[0] != 7 || got[1] != 42 {
		t.Fatalf("subscribers: %v", got)
	}
	for range 2 {
		if r := a.do("DELETE", "/v1/channels/breaking.news:eu-1/subscribers/42", "", "op"); r.status != http.StatusNoContent {
			t.Fatalf("unsubscribe: got %d %s", r.status, r.body)
		}
	}
	if got := a.subscribers("breaking.news:eu-1"); len(got) != 1 || got[0] != 7 {
		t.Fatalf("subscribers after unsubscribe: %v", got)
	}
}

func TestMalformedSubscription(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	tests := []struct{ path, want string }{
		{"/v1/channels/a%20b/subscribers/1", "channel: has only A-Z a-z 0-9 _ . : - characters; character 2 is ' '"},
		{"/v1/channels/" + strings.Repeat("c", 129) + "/subscribers/1", "channel: must be 1–128 characters; got 129"},
		{"/v1/channels/news/subscribers/abc", `user_id: must be a positive integer, got "abc"`},
		{"/v1/channels/news/subscribers/0", "user_id: must be a positive integer"},
		{"/v1/channels/news/subscribers/-4", "user_id: must be a positive integer"},
		// Positive, and past what an id can be: said so, not "must be positive".
		{"/v1/channels/news/subscribers/99999999999999999999", "user_id: 99999999999999999999 is out of range: at most 9223372036854775807"},
		{"/v1/channels/news/subscribers/-99999999999999999999", "user_id: must be a positive integer"},
		// What a client sent comes back cut (devices.Echo), not whole.
		{"/v1/channels/news/subscribers/" + strings.Repeat("a", 2000), `user_id: must be a positive integer, got "` + strings.Repeat("a", 64) + `…"`},
		{"/v1/channels/news/subscribers/" + strings.Repeat("9", 2000), "user_id: " + strings.Repeat("9", 64) + "… is out of range"},
	}
	for _, tt := range tests {
		for _, method := range []string{"PUT", "DELETE"} {
			if r := a.do(method, tt.path, "", ""); r.status != 400 || !strings.Contains(r.error(), tt.want) {
				t.Errorf("%s %s: got %d %s, want 400 with %q", method, tt.path, r.status, r.body, tt.want)
			}
		}
	}
}

// databaseDown is a pool of a PostgreSQL nobody listens for, and a client of
// the test Redis.
func databaseDown(t *testing.T) (*pgxpool.Pool, rueidis.Client) {
	t.Helper()
	port, err := pipelinetest.FreePort() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	db, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:"+strconv.Itoa(port)+"/none?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	rdb, err := pipeline.NewRedis(env.Redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	return db, rdb
}

// PostgreSQL unreachable: 503 + Retry-After, like Redis for device writes.
func TestSubscriptionWithDatabaseDownIs503(t *testing.T) {
	db, rdb := databaseDown(t)
	srv := httptest.NewServer(New(Config{Redis: rdb, DB: db, Keys: pipeline.NewKeys("down", 16), Log: zerolog.Nop(), Auth: Auth{Insecure: true}}))
	t.Cleanup(srv.Close)
	a := &deviceAPI{t: t, url: srv.URL}
	for _, method := range []string{"PUT", "DELETE"} {
		r := a.do(method, "/v1/channels/news/subscribers/1", "", "")
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(r.error(), "PostgreSQL is unreachable") {
			t.Fatalf("%s with PostgreSQL down: got %d (Retry-After %q) %s", method, r.status, r.header.Get("Retry-After"), r.body)
		}
	}
}

// PostgreSQL up but not serving (refusing connections: max_connections
// spent, starting up, closed for maintenance; or cancelling the statement:
// a statement timeout, a shutdown) is a 503 + Retry-After, not a 500 asking
// whether the schema is migrated; a statement given up says so and why,
// not that PostgreSQL is unreachable.
func TestSubscriptionWithDatabaseNotServingIs503(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// stop makes PostgreSQL stop serving the database db (quoted)
		// through admin, a connection to another database; it returns
		// what undoes it.
		stop func(t *testing.T, admin *pgx.Conn, db string, cfg *pgx.ConnConfig) (undo func())
		want string // in the error
	}{
		{"closed to connections", func(t *testing.T, admin *pgx.Conn, db string, _ *pgx.ConnConfig) func() {
			if _, err := admin.Exec(t.Context(), `ALTER DATABASE `+db+` ALLOW_CONNECTIONS false`); err != nil {
				t.Fatal(err)
			}
			return func() { admin.Exec(context.Background(), `ALTER DATABASE `+db+` ALLOW_CONNECTIONS true`) }
		}, "PostgreSQL is unreachable"},
		{"statement timeout behind a lock", func(t *testing.T, admin *pgx.Conn, db string, cfg *pgx.ConnConfig) func() {
			holder, err := pgx.ConnectConfig(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := holder.Exec(t.Context(), `BEGIN; LOCK TABLE subscriptions IN ACCESS EXCLUSIVE MODE`); err != nil {
				t.Fatal(err)
			}
			if _, err := admin.Exec(t.Context(), `ALTER DATABASE `+db+` SET statement_timeout = '300ms'`); err != nil {
				t.Fatal(err)
			}
			return func() { holder.Close(context.Background()) }
		}, "PostgreSQL did not complete the write (57014: canceling statement due to statement timeout)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
			cfg := a.db.Config().ConnConfig.Copy()
			other := cfg.Copy()
			other.Database = "postgres" // a database cannot close itself to connections
			admin, err := pgx.ConnectConfig(t.Context(), other)
			if err != nil {
				t.Fatal(err)
			}
			undo := tt.stop(t, admin, pgx.Identifier{cfg.Database}.Sanitize(), cfg)
			t.Cleanup(func() { undo(); admin.Close(context.Background()) })
			a.db.Reset() // the server's pool connects anew, under the new settings
			for _, method := range []string{"PUT", "DELETE"} {
				r := a.do(method, "/v1/channels/news/subscribers/1", "", "")
				if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(r.error(), tt.want) {
					t.Errorf("%s: got %d (Retry-After %q) %s, want 503 saying %q", method, r.status, r.header.Get("Retry-After"), r.body, tt.want)
				}
			}
		})
	}
}
