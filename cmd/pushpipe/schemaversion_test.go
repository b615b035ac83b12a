package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/pipeline/schema"
)

// A process refuses a database that `pushpipe migrate` has not brought to
// its schema, saying so (it used to start, and answer a rate PATCH or a
// retry of a stored id 503 until someone migrated); migrate itself runs on
// it, and after it the process starts. On a database a newer release
// migrated (a rollback) it starts and says so once. The check creates
// nothing: a database never migrated is left without goose's table.
func TestProcessesCheckTheSchemaVersion(t *testing.T) {
	t.Parallel()
	bin := pipelinetest.Binary(t)
	r := pipelinetest.RedisT(t, pipelinetest.RedisOptions{})
	ctx := t.Context()
	current := pipelinetest.MigratedDatabaseT(t, env.Postgres)
	want := versions(t, current).Binary
	behind := pipelinetest.DatabaseT(t, env.Postgres)
	if err := schema.MigrateTo(ctx, behind, want-1); err != nil {
		t.Fatal(err)
	}
	empty := pipelinetest.DatabaseT(t, env.Postgres)
	ahead := pipelinetest.MigratedDatabaseT(t, env.Postgres)
	exec1(t, ahead, `INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, true)`, want+1)
	base := []string{"PUSHPIPE_REDIS_ADDR=" + r.Addr, "PUSHPIPE_LOG_LEVEL=info"}
	api := []string{"api", "--listen", freeAddr(t), "--http", freeAddr(t), "--insecure-no-auth"}

	for _, tt := range []struct {
		name, url string
		at        int64
	}{{"behind", behind, want - 1}, {"never migrated", empty, 0}} {
		out, _, err := run(t, bin, append(base, "PUSHPIPE_DATABASE_URL="+tt.url), api...)
		say := fmt.Sprintf("the database schema is at %d, this pushpipe needs %d: run `pushpipe migrate` first", tt.at, want)
		if err == nil || !strings.Contains(out, say) {
			t.Errorf("%s: api exited with %v, want non-zero saying %q:\n%s", tt.name, err, say, out)
		}
	}
	var table *string
	if err := pool(t, empty).QueryRow(ctx, `SELECT to_regclass('goose_db_version')::text`).Scan(&table); err != nil || table != nil {
		t.Errorf("never migrated: goose's table is %v (%v) after the check, want none", table, err)
	}
	if out, _, err := run(t, bin, append(base, "PUSHPIPE_DATABASE_URL="+behind), "migrate"); err != nil {
		t.Fatalf("migrate on a database behind: %v\n%s", err, out)
	}
	if out := serve(t, bin, append(base, "PUSHPIPE_DATABASE_URL="+behind), api); strings.Contains(out, "schema") {
		t.Errorf("migrated: api said %q, want nothing of the schema", out)
	}
	out := serve(t, bin, append(base, "PUSHPIPE_DATABASE_URL="+ahead), api)
	if n := strings.Count(out, "the database schema is newer than this pushpipe's"); n != 1 || !strings.Contains(out, `"level":"info"`) {
		t.Errorf("ahead: said it %d times, want once at info:\n%s", n, out)
	}
}

// serve starts args, waits until its /healthz answers, stops it with
// SIGTERM and returns what it logged; it must exit 0.
func serve(t *testing.T, bin string, env, args []string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ops := args[slices.Index(args, "--http")+1]
	deadline := time.Now().Add(60 * time.Second) // a hang guard: a loaded machine starts slowly
	for {
		resp, err := http.Get("http://" + ops + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("%v exited before serving: %v\n%s", args, err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			t.Fatalf("%v never served /healthz:\n%s", args, stderr.String())
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		t.Fatalf("%v on SIGTERM: %v\n%s", args, err, stderr.String())
	}
	return stderr.String()
}

// versions reads url's schema versions.
func versions(t *testing.T, url string) schema.Versions {
	t.Helper()
	v, err := schema.ReadVersions(t.Context(), pool(t, url))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// pool is a pool of url, closed at the test's end.
func pool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func exec1(t *testing.T, url, sql string, args ...any) {
	t.Helper()
	if _, err := pool(t, url).Exec(t.Context(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

// freeAddr is a loopback address with a port free now.
func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := pipelinetest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}
