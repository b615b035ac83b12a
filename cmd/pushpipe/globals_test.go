package main

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// Short-lived commands fail within 2 s on a refused or unparsable Redis
// address, and any process within 5 s on a database that does not answer,
// naming what to set and (for PostgreSQL) the host and user, never the
// password.
func TestConnectFailsFastAndSaysWhatToSet(t *testing.T) {
	tests := []struct {
		name    string
		redis   string
		db      string
		connect func(g *Globals) error
		within  time.Duration
		want    []string
	}{
		{"redis refused", "127.0.0.1:1", "",
			func(g *Globals) error { _, err := g.RedisNow(); return err },
			3 * time.Second, []string{"PUSHPIPE_REDIS_ADDR", "127.0.0.1:1"}},
		{"redis unparsable", "localhost", "",
			func(g *Globals) error { _, err := g.RedisNow(); return err },
			time.Second, []string{"PUSHPIPE_REDIS_ADDR", "not host:port"}},
		{"postgres refused", "", "postgres://bob:s3cret@127.0.0.1:1/x",
			func(g *Globals) error { _, err := g.DB(1); return err },
			6 * time.Second, []string{"PUSHPIPE_DATABASE_URL", "127.0.0.1:1", `"bob"`}},
		{"postgres unparsable", "", "postgres://bob:s3cret@127.0.0.1:notaport/x",
			func(g *Globals) error { _, err := g.DB(1); return err },
			time.Second, []string{"PUSHPIPE_DATABASE_URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := tt.connect(&Globals{RedisAddr: tt.redis, DatabaseURL: tt.db})
			took := time.Since(start)
			if err == nil {
				t.Fatal("connected; want an error")
			}
			if took > tt.within {
				t.Errorf("failed after %s, want within %s", took, tt.within)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// A process's PostgreSQL pool is open before its first query: a burst of
// work (a fresh deliver's first direct messages) must not wait for
// backends to be forked and authenticated.
func TestDBPoolOpensAtStart(t *testing.T) {
	g := &Globals{DatabaseURL: pipelinetest.MigratedDatabaseT(t, env.Postgres)}
	pool, err := g.DB(5)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	pipelinetest.Eventually(t, 10*time.Second, "5 connections open", func() bool {
		return pool.Stat().TotalConns() == 5
	})
	if n := pool.Stat().AcquiredConns(); n != 0 {
		t.Errorf("%d connections in use; the pool should be open and idle", n)
	}
}

// A Redis that refuses the credentials is named as such at once, not as "no
// Redis at X after 30s", which sent the operator to check the address; a
// wait cut short (SIGTERM) says how long it waited.
func TestRedisRefusalSaysWhatWentWrong(t *testing.T) {
	r := pipelinetest.RedisT(t, pipelinetest.RedisOptions{Security: pipelinetest.SecurityAuth})
	t.Setenv("PUSHPIPE_REDIS_PASSWORD", "not-the-password")
	stopped, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	tests := []struct {
		name    string
		g       *Globals
		connect func(g *Globals) error
		want    []string
		not     string
		within  time.Duration
	}{
		{"wrong password, server", &Globals{RedisAddr: r.Addr, RedisAuth: RedisAuth{Username: r.Client.Username}},
			func(g *Globals) error { _, err := g.Redis(); return err },
			[]string{"Redis at " + r.Addr, "refused to sign this client in", "PUSHPIPE_REDIS_PASSWORD", "WRONGPASS"}, "after 30s", time.Second},
		{"wrong password, operator tool", &Globals{RedisAddr: r.Addr, RedisAuth: RedisAuth{Username: r.Client.Username}},
			func(g *Globals) error { _, err := g.RedisNow(); return err },
			[]string{"refused to sign this client in", "PUSHPIPE_REDIS_USERNAME"}, "no Redis", time.Second},
		{"no Redis, wait cut short", &Globals{RedisAddr: "127.0.0.1:1", ctx: stopped},
			func(g *Globals) error { _, err := g.Redis(); return err },
			[]string{"no Redis at 127.0.0.1:1", "is it down, or elsewhere?", "PUSHPIPE_REDIS_ADDR"}, "after 30s", 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := tt.connect(tt.g)
			if took := time.Since(start); took > tt.within {
				t.Errorf("failed after %s, want within %s", took, tt.within)
			}
			if err == nil {
				t.Fatal("connected; want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), tt.not) || strings.Contains(err.Error(), "not-the-password") {
				t.Errorf("error %q says %q or the password", err, tt.not)
			}
		})
	}
}

// A Redis that takes the connection and says nothing (frozen: a hung host,
// or packets dropped on the way) is named as one that does not answer, with
// the time the command waited: it said "no Redis at X after 2s: is it down"
// after 5.4 s, and the server was up.
func TestRedisThatDoesNotAnswer(t *testing.T) {
	r := pipelinetest.RedisT(t, pipelinetest.RedisOptions{})
	if err := r.Freeze(); err != nil {
		t.Fatal(err)
	}
	defer r.Thaw()
	start := time.Now()
	_, err := (&Globals{RedisAddr: r.Addr}).RedisNow()
	took := time.Since(start)
	if err == nil {
		t.Fatal("connected to a frozen Redis")
	}
	m := regexp.MustCompile(`^Redis at (\S+)(?: without AUTH)? did not answer in (\S+): is it hung or overloaded`).FindStringSubmatch(err.Error())
	if m == nil || m[1] != r.Addr {
		t.Fatalf("error %q; want it to say Redis at %s did not answer", err, r.Addr)
	}
	// Said rounded to 100 ms, and measured here a little after it was said.
	if said, perr := time.ParseDuration(m[2]); perr != nil || said > took+50*time.Millisecond || said < took-time.Second {
		t.Errorf("says it waited %s (%v); it waited %s", m[2], perr, took)
	}
}

// A PostgreSQL that answers but refuses the connection is named for what it
// said, with what to do: a database that does not exist was reported as a
// server that "does not answer", which sent the operator to check the
// address.
func TestDatabaseRefusalSaysWhy(t *testing.T) {
	good, err := url.Parse(pipelinetest.DatabaseT(t, env.Postgres))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		edit  func(u *url.URL)
		want  []string
		never string
	}{
		{"no such database", func(u *url.URL) { u.Path = "/nosuchdb" },
			[]string{`no database "nosuchdb"`, "createdb nosuchdb", "PUSHPIPE_DATABASE_URL"}, "does not answer"},
		{"no such user", func(u *url.URL) { u.User = url.UserPassword("nosuchuser", "s3cret") },
			[]string{`"nosuchuser"`, "refused the login", "user and password"}, "s3cret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := *good
			tt.edit(&u)
			_, err := (&Globals{DatabaseURL: u.String()}).DB(1)
			if err == nil {
				t.Fatal("connected; want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), tt.never) {
				t.Errorf("error %q says %q", err, tt.never)
			}
		})
	}
}

// A shell in a checkout where `make dev` wrote .pushpipe/env, which did
// not source it (PUSHPIPE_REDIS_ADDR unset), is told to; a shell that set
// an address, or is elsewhere, is not.
func TestNoRedisPointsAtDevEnv(t *testing.T) {
	const hint = "source .pushpipe/env"
	tests := []struct {
		name    string
		envFile bool
		addrEnv string
		want    bool
	}{
		{"make dev's checkout, nothing sourced", true, "", true},
		{"make dev's checkout, an address set", true, "127.0.0.1:1", false},
		{"elsewhere", false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.envFile {
				if err := os.MkdirAll(filepath.Join(dir, ".pushpipe"), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, ".pushpipe", "env"), []byte("export PUSHPIPE_REDIS_ADDR=127.0.0.1:1\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			t.Chdir(dir)
			t.Setenv("PUSHPIPE_REDIS_ADDR", tt.addrEnv)
			_, err := (&Globals{RedisAddr: "127.0.0.1:1"}).RedisNow()
			if err == nil {
				t.Fatal("connected; want an error")
			}
			if got := strings.Contains(err.Error(), hint); got != tt.want {
				t.Errorf("error %q says %q: %v, want %v", err, hint, got, tt.want)
			}
			if !strings.Contains(err.Error(), "no Redis at 127.0.0.1:1") {
				t.Errorf("error %q does not say where it looked", err)
			}
		})
	}
}
