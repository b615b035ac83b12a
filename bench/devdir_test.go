package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestDevPostgresUnderClosedParent is `make dev` from a clone in a 0700
// mktemp -d dir, as CI runs it (root): PostgreSQL, which then runs as user
// postgres, comes up, and a second run from the same clone finds the same
// directory and data again. As a normal user the files stay in the clone.
func TestDevPostgresUnderClosedParent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// Not t.TempDir(): its parent is 0700 too, and /tmp is open.
	closed, err := os.MkdirTemp("/tmp", "bench-closed-*") // 0700
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(closed) })
	data := filepath.Join(closed, "clone", ".pushpipe")

	run := func(sql string) {
		t.Helper()
		dir, note, err := DevPostgresDir(data)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if os.Geteuid() == 0 {
			if !strings.HasPrefix(dir, devPostgresBase+"/pushpipe-dev-") || !strings.Contains(note, dir) {
				t.Fatalf("as root: dir %s, note %q; want a dir under %s, named in the note", dir, note, devPostgresBase)
			}
			if target, err := os.Readlink(filepath.Join(data, "postgres")); err != nil || target != dir {
				t.Fatalf("%s/postgres -> %q, %v; want a link to %s", data, target, err, dir)
			}
		} else if dir != filepath.Join(data, "postgres") || note != "" {
			t.Fatalf("as a normal user: dir %s, note %q; want %s/postgres and no note", dir, note, data)
		}
		s := &Servers{PIDs: map[string]int{}}
		if err := s.startPostgres(ctx, ServerConfig{DataDir: data, PostgresDir: dir}); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		}()
		st, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", dir, st.Mode().Perm())
		}
		if os.Geteuid() == 0 && st.Sys().(*syscall.Stat_t).Uid == 0 {
			t.Errorf("%s is owned by root, want postgres", dir)
		}
		conn, err := pgx.Connect(ctx, s.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	run(`CREATE TABLE kept AS SELECT 1 AS id`)
	run(`SELECT id FROM kept`) // fails unless the second run found the first one's data
}

// TestCheckDevDir: a directory planted under dev's predictable name in the
// world-writable /var/tmp is refused, not chowned to postgres and used.
func TestCheckDevDir(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	mine := filepath.Join(base, "mine")
	if err := os.Mkdir(mine, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := checkDevDir(mine); os.Geteuid() == 0 && err != nil {
		t.Errorf("root's own directory refused: %v", err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(mine, link); err != nil {
		t.Fatal(err)
	}
	if err := checkDevDir(link); err == nil {
		t.Error("a symlink was accepted")
	}
	if os.Geteuid() != 0 {
		return
	}
	theirs := filepath.Join(base, "theirs")
	if err := os.Mkdir(theirs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := checkDevDir(theirs); err == nil || !strings.Contains(err.Error(), "uid 65534") {
		t.Errorf("a directory of uid 65534: %v; want it refused", err)
	}
}
