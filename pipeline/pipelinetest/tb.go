package pipelinetest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/bench/localserver"
	"github.com/pushpipe/pushpipe/pipeline/schema"
)

// RedisT starts a Redis server for one test and closes it at cleanup.
func RedisT(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	r, err := StartRedis(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

// ClusterT starts a 3-master Redis Cluster for one test and closes it at
// cleanup.
func ClusterT(t testing.TB) *Cluster {
	t.Helper()
	return ClusterWithT(t, RedisOptions{})
}

// ClusterWithT is ClusterT with every master started with node
// (localserver.StartClusterWith).
func ClusterWithT(t testing.TB, node RedisOptions) *Cluster {
	t.Helper()
	c, err := localserver.StartClusterWith(localserver.ClusterMasters, node)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// PostgresT starts a PostgreSQL server (non-durable defaults) for one test
// and closes it at cleanup.
func PostgresT(t testing.TB) *Postgres {
	t.Helper()
	p, err := StartPostgres(PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// DatabaseT creates a fresh database on p for one test and returns its URL;
// it is dropped at cleanup (dropAtCleanup).
func DatabaseT(t testing.TB, p *Postgres) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url, err := p.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dropAtCleanup(t, p, url)
	return url
}

// dropAtCleanup drops the test's database when the test is done, after
// whatever the test registered later (its pools, its processes) is closed,
// so that a server shared by a package's tests removes each test's files
// while others run rather than all of them at the end (Postgres.DropDatabase).
// A drop that fails is logged, not failed: the server's Close removes the
// database anyway.
func dropAtCleanup(t testing.TB, p *Postgres, url string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.DropDatabase(ctx, url); err != nil {
			t.Logf("left for the server's close: %v", err)
		}
	})
}

// MigratedDatabaseT is DatabaseT migrated to this tree's schema: a copy of
// a database that schema.Migrate migrated once on p, the same tables,
// indexes and goose version as migrating each, in a fraction of the time
// (a package's tests each take one). It is dropped at cleanup.
func MigratedDatabaseT(t testing.TB, p *Postgres) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url, err := p.NewDatabaseFrom(ctx, "migrated", schema.Migrate)
	if err != nil {
		t.Fatal(err)
	}
	dropAtCleanup(t, p, url)
	return url
}

// MigratedT is DatabaseT migrated to this tree's schema, with a pool of it
// closed at the test's end: what a test of the stores needs. It migrates
// in place, not from MigratedDatabaseT's template: its callers mostly give
// it a server of their own, where a template would be one database more.
func MigratedT(t testing.TB, p *Postgres) (string, *pgxpool.Pool) {
	t.Helper()
	url := DatabaseT(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := schema.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	db, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return url, db
}

// Eventually polls cond every 20 ms until it holds, and fails the test
// naming what it waited for if it does not within timeout. Tests wait on
// conditions, never on sleeps.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreeAddr is "127.0.0.1:PORT" of a FreePort, for a child process or a
// server the test starts (and may restart) itself: the port is drawn below
// the kernel's ephemeral range, so no process's outgoing connection takes
// it while nothing listens on it, and never twice in one test binary.
func FreeAddr(t testing.TB) string {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}
