package localserver

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
)

// template is a database NewDatabaseFrom copies, prepared once.
type template struct {
	once sync.Once
	name string
	err  error
}

// NewDatabase creates an empty database with a unique name and returns its
// URL, so tests sharing one server do not see each other's tables.
func (p *Postgres) NewDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("test_%d", p.dbSeq.Add(1))
	conn, err := pgx.Connect(ctx, p.URL)
	if err != nil {
		return "", fmt.Errorf("new database: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("new database %s: %w", name, err)
	}
	return p.databaseURL(name), nil
}

// NewDatabaseFrom creates a database as NewDatabase does, a copy of the
// template database of key: the first call of a key creates an empty
// database and runs prepare on its URL (a schema migrated, say), and every
// call copies it (CREATE DATABASE ... TEMPLATE), which costs a fraction of
// preparing each copy again. prepare must close its connections: a
// template with a session open cannot be copied. A prepare that failed
// fails every call of its key.
func (p *Postgres) NewDatabaseFrom(ctx context.Context, key string, prepare func(ctx context.Context, url string) error) (string, error) {
	p.templatesMu.Lock()
	if p.templates == nil {
		p.templates = map[string]*template{}
	}
	tmpl := p.templates[key]
	if tmpl == nil {
		tmpl = &template{}
		p.templates[key] = tmpl
	}
	p.templatesMu.Unlock()
	tmpl.once.Do(func() {
		tmpl.name = fmt.Sprintf("template_%d", p.dbSeq.Add(1))
		conn, err := pgx.Connect(ctx, p.URL)
		if err != nil {
			tmpl.err = err
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{tmpl.name}.Sanitize()); err != nil {
			tmpl.err = err
			return
		}
		tmpl.err = prepare(ctx, p.databaseURL(tmpl.name))
	})
	if tmpl.err != nil {
		return "", fmt.Errorf("new database from template %s: %w", key, tmpl.err)
	}
	name := fmt.Sprintf("test_%d", p.dbSeq.Add(1))
	conn, err := pgx.Connect(ctx, p.URL)
	if err != nil {
		return "", fmt.Errorf("new database: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{tmpl.name}.Sanitize()); err != nil {
		return "", fmt.Errorf("new database %s: %w", name, err)
	}
	return p.databaseURL(name), nil
}

// DropDatabase drops a database NewDatabase or NewDatabaseFrom made, once
// its test is done with it: a server a package's tests share otherwise
// holds every test's database (10 MB and 300 files each) until Close,
// whose removal of them all, one after another at the end of the run, took
// 15–30 s on a loaded machine. It waits up to 5 s for sessions of the
// database to end, then fails; it terminates none (a test still using its
// database must not see it vanish). A server that is not running has
// nothing to drop: Close removes its files.
func (p *Postgres) DropDatabase(ctx context.Context, url string) error {
	if p.proc.exited() {
		return nil
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("drop database: %w", err)
	}
	conn, err := pgx.Connect(ctx, p.URL)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", cfg.Database, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{cfg.Database}.Sanitize()); err != nil {
		return fmt.Errorf("drop database %s: %w", cfg.Database, err)
	}
	return nil
}
