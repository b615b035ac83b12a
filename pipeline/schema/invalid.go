package schema

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// repairLock is the session advisory lock key that makes one migrate at a
// time repair indexes (goose's own lock is released by then): two
// rebuilds of one index at once would wait on each other.
const repairLock = 0x70757368 // "push"

// repairInvalid rebuilds the indexes of the current schema that PostgreSQL
// marks invalid, and returns their names. A CREATE INDEX CONCURRENTLY
// stopped half way (a statement_timeout, a cancel, the migrate Job's pod
// killed while the build waited for a stage's transaction) leaves its index
// behind invalid: never read by a query, yet written by every insert.
// goose records the migration only after its last statement, so the next
// migrate runs it again, but IF NOT EXISTS skips the name: without this the
// index stayed invalid for good, and the purges it serves read the whole
// table every minute.
//
// REINDEX CONCURRENTLY builds the index again without blocking writes, as
// the migration meant to. The leftovers of an interrupted REINDEX
// CONCURRENTLY itself (names ending _ccnew or _ccold, with a digit or not)
// are dropped instead, as PostgreSQL's documentation advises.
func repairInvalid(ctx context.Context, db *sql.DB) ([]string, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("repair indexes: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, repairLock); err != nil {
		return nil, fmt.Errorf("repair indexes: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, repairLock)
	rows, err := conn.QueryContext(ctx, `SELECT c.relname FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE NOT i.indisvalid AND n.nspname = current_schema() ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("repair indexes: %w", err)
	}
	var invalid []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return nil, fmt.Errorf("repair indexes: %w", err)
		}
		invalid = append(invalid, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("repair indexes: %w", err)
	}
	var rebuilt []string
	for _, name := range invalid {
		ident := pgx.Identifier{name}.Sanitize()
		q := `REINDEX INDEX CONCURRENTLY ` + ident
		if leftover(name) {
			q = `DROP INDEX CONCURRENTLY IF EXISTS ` + ident
		}
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return rebuilt, fmt.Errorf("repair index %s (left invalid by an interrupted build; run pushpipe migrate again, or %s by hand): %w", name, q, err)
		}
		if !leftover(name) {
			rebuilt = append(rebuilt, name)
		}
	}
	return rebuilt, nil
}

// leftover is a name REINDEX CONCURRENTLY gives its temporary index.
func leftover(name string) bool {
	base := strings.TrimRight(name, "0123456789")
	return strings.HasSuffix(base, "_ccnew") || strings.HasSuffix(base, "_ccold")
}
