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
	"github.com/pressly/goose/v3/database"
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

// Versions are the schema version a database is at and the newest one this
// binary embeds.
type Versions struct {
	Database int64 // goose's version of the database; 0 when never migrated
	Binary   int64 // the newest embedded migration
}

// ReadVersions reads them, changing nothing: goose's GetDBVersion creates
// its version table in a database that has none, which is `pushpipe
// migrate`'s to do (with the schema owner's role; a process's may not
// create tables), so a database without it is read as version 0.
func ReadVersions(ctx context.Context, pool *pgxpool.Pool) (Versions, error) {
	sub, err := subFS()
	if err != nil {
		return Versions{}, err
	}
	db := stdlib.OpenDBFromPool(pool) // closing it leaves the pool open
	defer db.Close()
	// No locker: a read waits for no migration in progress. Not Close: it
	// closes db, which this function owns.
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub)
	if err != nil {
		return Versions{}, fmt.Errorf("schema version: %w", err)
	}
	sources := p.ListSources() // ascending
	v := Versions{Binary: sources[len(sources)-1].Version}
	store, err := database.NewStore(database.DialectPostgres, goose.DefaultTablename)
	if err != nil {
		return v, fmt.Errorf("schema version: %w", err)
	}
	ext, ok := store.(database.StoreExtender)
	if !ok {
		return v, fmt.Errorf("schema version: goose's PostgreSQL store cannot tell whether %s exists", goose.DefaultTablename)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return v, fmt.Errorf("schema version: %w", err)
	}
	exists, err := ext.TableExists(ctx, conn)
	conn.Close()
	switch {
	case err != nil:
		return v, fmt.Errorf("schema version: %w", err)
	case !exists:
		return v, nil
	}
	if v.Database, err = p.GetDBVersion(ctx); err != nil {
		return v, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}

// Check is nil when the database's schema is at least the binary's: a
// process whose queries name a column a later migration adds would
// otherwise start, and fail those requests one by one (a 503 for a rate
// change) until someone runs migrate. A schema ahead of the binary is a
// rollback's, which expand/contract migrations keep working (Ahead).
func (v Versions) Check() error {
	if v.Database < v.Binary {
		return fmt.Errorf("the database schema is at %d, this pushpipe needs %d: run `pushpipe migrate` first", v.Database, v.Binary)
	}
	return nil
}

// Ahead is a database migrated by a newer release than this binary.
func (v Versions) Ahead() bool { return v.Database > v.Binary }

// MigrateTo applies the migrations up to version and no further: a
// database as an older release left it, for tests of what a newer one
// makes of it.
func MigrateTo(ctx context.Context, databaseURL string, version int64) error {
	err := withProvider(ctx, databaseURL, func(p *goose.Provider) error {
		_, err := p.UpTo(ctx, version)
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate to %d: %w", version, err)
	}
	return nil
}

// withProvider runs f on a goose provider of the embedded migrations over a
// pool of its own on databaseURL, without goose's lock: a test's database
// brought to a version, up (MigrateTo) or down (DownTo in the tests).
func withProvider(ctx context.Context, databaseURL string, f func(*goose.Provider) error) error {
	pool, err := pgxpool.New(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	sub, err := subFS()
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub)
	if err != nil {
		return err
	}
	return f(p)
}
