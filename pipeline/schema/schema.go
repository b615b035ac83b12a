// Package schema owns pushpipe's PostgreSQL schema: SQL migrations embedded in
// the binary and applied with goose.
package schema

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies every pending migration. It is safe to run from several
// processes at once: goose takes a session advisory lock.
func Migrate(ctx context.Context, databaseURL string) error {
	_, err := Apply(ctx, databaseURL)
	return err
}

// Report is what Apply changed.
type Report struct {
	Applied []Applied
	// Rebuilt are the indexes an interrupted concurrent build had left
	// invalid, built again (repairInvalid).
	Rebuilt []string
}

// Applied is one migration that Apply ran.
type Applied struct {
	Version int64
	File    string // e.g. 00003_devices_id.sql
	Took    time.Duration
}

// Apply is Migrate, reporting the migrations it ran (none when the schema
// was up to date) and the indexes it rebuilt, so that `pushpipe migrate`
// can say what it changed.
func Apply(ctx context.Context, databaseURL string) (Report, error) {
	pool, err := pgxpool.New(ctx, databaseURL)
	if err != nil {
		return Report{}, fmt.Errorf("migrate: %w", err)
	}
	defer pool.Close()
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	applied, err := migrate(ctx, db)
	if err != nil {
		return Report{Applied: applied}, err
	}
	rebuilt, err := repairInvalid(ctx, db)
	return Report{Applied: applied, Rebuilt: rebuilt}, err
}

// subFS is the migrations, as goose reads them.
func subFS() (fs.FS, error) { return fs.Sub(migrations, "migrations") }

func migrate(ctx context.Context, db *sql.DB) ([]Applied, error) {
	sub, err := subFS()
	if err != nil {
		return nil, err
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithSessionLocker(locker))
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	applied := make([]Applied, 0, len(results))
	for _, r := range results {
		applied = append(applied, Applied{Version: r.Source.Version, File: path.Base(r.Source.Path), Took: r.Duration})
	}
	return applied, nil
}
