package bench

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// SeedConfig describes the synthetic population: Users people with ids
// 1..Users, Channels channels named ch0..chK-1 (or Names), each user subscribed to one
// home channel and, with probability Overlap, to a second one; every user
// has one device, a share TwoDevices has a second one; each device is iOS
// with probability IOSShare, else Android. The same config always produces
// the same rows (every choice is a hash of the user id).
type SeedConfig struct {
	App        string
	Users      int64
	Channels   int
	Names      []string // the channels' names when set (Channels is then their count)
	Overlap    float64
	TwoDevices float64
	IOSShare   float64
	// Locales, when set, are spread evenly over the devices (by a hash of
	// the device), so a localized campaign renders a text per locale.
	Locales []string
}

func (c *SeedConfig) defaults() {
	if c.App == "" {
		c.App = "bench"
	}
	if len(c.Names) > 0 {
		c.Channels = len(c.Names)
	}
	if c.Channels <= 0 {
		c.Channels = 1
	}
	if c.IOSShare == 0 {
		c.IOSShare = 0.45
	}
}

// ChannelNames are the channels the seed creates.
func (c SeedConfig) ChannelNames() []string {
	c.defaults()
	if len(c.Names) > 0 {
		return c.Names
	}
	out := make([]string, c.Channels)
	for i := range out {
		out[i] = fmt.Sprintf("ch%d", i)
	}
	return out
}

// SeedResult counts the rows written.
type SeedResult struct {
	Users, Subscriptions, Devices int64
	Took                          time.Duration
	// The phases: COPY of both tables, index rebuild, VACUUM ANALYZE.
	Copy, Index, Vacuum time.Duration
	Indexes             map[string]time.Duration // each index's build
}

// Seed replaces the devices and subscriptions tables of the database at url
// with the synthetic population. It is built for speed, because a 10M-user
// run must seed in under a minute on two cores:
//   - the tables' indexes and primary keys are dropped and rebuilt after the
//     load (one sort per index instead of 10M random B-tree inserts), from
//     the definitions read back from the catalog, so the migrations stay the
//     only place that defines them;
//   - rows are streamed in COPY's binary format, written by hand (no
//     per-value interface boxing, no text parsing on the server);
//   - each table is truncated and loaded in one transaction with FREEZE,
//     so with wal_level=minimal the load writes no WAL and leaves the pages
//     all-visible (deliver's token lookup is an index-only scan);
//   - the two tables load concurrently on two connections.
//
// Devices are written in user id order, as a table that is clustered by
// user would be.
func Seed(ctx context.Context, url string, cfg SeedConfig) (SeedResult, error) {
	cfg.defaults()
	start := time.Now()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return SeedResult{}, fmt.Errorf("seed: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	defs, err := dropIndexes(ctx, conn, "devices", "subscriptions")
	if err != nil {
		return SeedResult{}, err
	}
	var res SeedResult
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		n, err := copyTable(gctx, url, "subscriptions", []string{"channel", "user_id"}, subscriptionRows(cfg))
		res.Subscriptions = n
		return err
	})
	g.Go(func() error {
		cols := []string{"app", "token", "user_id", "platform", "event_at"}
		if len(cfg.Locales) > 0 {
			cols = append(cols, "locale")
		}
		n, err := copyTable(gctx, url, "devices", cols, deviceRows(cfg))
		res.Devices = n
		return err
	})
	if err := g.Wait(); err != nil {
		return res, err
	}
	res.Copy = time.Since(start)
	if res.Indexes, err = rebuildIndexes(ctx, url, defs); err != nil {
		return res, err
	}
	res.Index = time.Since(start) - res.Copy
	if _, err := conn.Exec(ctx, `VACUUM (ANALYZE) devices, subscriptions`); err != nil {
		return res, fmt.Errorf("seed: vacuum: %w", err)
	}
	res.Vacuum = time.Since(start) - res.Copy - res.Index
	res.Users = cfg.Users
	res.Took = time.Since(start)
	return res, nil
}

// indexDef is an index or a primary key to rebuild after the load.
type indexDef struct {
	table, name, sql string
	constraint       bool
}

// dropIndexes drops every index (and primary key) of the tables and returns
// the statements that recreate them.
func dropIndexes(ctx context.Context, conn *pgx.Conn, tables ...string) ([]indexDef, error) {
	rows, err := conn.Query(ctx, `
		SELECT t.relname, i.relname, coalesce(c.conname, ''),
		       CASE WHEN c.oid IS NULL THEN pg_get_indexdef(i.oid)
		            ELSE format('ALTER TABLE %I ADD CONSTRAINT %I %s', t.relname, c.conname, pg_get_constraintdef(c.oid)) END
		FROM pg_index x
		JOIN pg_class i ON i.oid = x.indexrelid
		JOIN pg_class t ON t.oid = x.indrelid
		LEFT JOIN pg_constraint c ON c.conindid = i.oid AND c.contype IN ('p', 'u')
		WHERE t.relname = ANY($1) AND t.relnamespace = 'public'::regnamespace`, tables)
	if err != nil {
		return nil, fmt.Errorf("seed: read index definitions: %w", err)
	}
	var defs []indexDef
	for rows.Next() {
		var d indexDef
		var con string
		if err := rows.Scan(&d.table, &d.name, &con, &d.sql); err != nil {
			return nil, fmt.Errorf("seed: read index definitions: %w", err)
		}
		if con != "" {
			d.name, d.constraint = con, true
		}
		defs = append(defs, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("seed: read index definitions: %w", err)
	}
	for _, d := range defs {
		stmt := "DROP INDEX " + pgx.Identifier{d.name}.Sanitize()
		if d.constraint {
			stmt = "ALTER TABLE " + pgx.Identifier{d.table}.Sanitize() + " DROP CONSTRAINT " + pgx.Identifier{d.name}.Sanitize()
		}
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("seed: %s: %w", stmt, err)
		}
	}
	return defs, nil
}

// rebuildIndexes recreates the indexes all at once, and says how long each
// took. They differ a lot in cost (the covering index on devices is the
// largest): started together they share the cores until the end, where two
// at a time would leave the largest to run alone last.
func rebuildIndexes(ctx context.Context, url string, defs []indexDef) (map[string]time.Duration, error) {
	var mu sync.Mutex
	took := map[string]time.Duration{}
	g, gctx := errgroup.WithContext(ctx)
	for _, d := range defs {
		g.Go(func() error {
			conn, err := pgx.Connect(gctx, url)
			if err != nil {
				return fmt.Errorf("seed: connect: %w", err)
			}
			defer conn.Close(context.WithoutCancel(gctx))
			// A 12M-row index of tokens is ~1.4 GB: with less, the sort
			// spills to disk even for presorted input (10M users: 36 s of
			// index builds at 1 GB, 16 s at 2 GB).
			if _, err := conn.Exec(gctx, `SET maintenance_work_mem = '2GB'`); err != nil {
				return fmt.Errorf("seed: %w", err)
			}
			t := time.Now()
			if _, err := conn.Exec(gctx, d.sql); err != nil {
				return fmt.Errorf("seed: rebuild %s: %w", d.name, err)
			}
			mu.Lock()
			took[d.name] = time.Since(t).Round(time.Millisecond)
			mu.Unlock()
			return nil
		})
	}
	return took, g.Wait()
}

// copyTable truncates table and loads it from src in one transaction.
func copyTable(ctx context.Context, url, table string, cols []string, src func(w *copyWriter) error) (int64, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, fmt.Errorf("seed %s: connect: %w", table, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("seed %s: %w", table, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "TRUNCATE "+pgx.Identifier{table}.Sanitize()); err != nil {
		return 0, fmt.Errorf("seed %s: truncate: %w", table, err)
	}
	pr, pw := io.Pipe()
	cw := newCopyWriter(pw)
	go func() { pw.CloseWithError(errors.Join(src(cw), cw.finish())) }()
	sql := fmt.Sprintf("COPY %s (%s) FROM STDIN WITH (FORMAT binary, FREEZE)",
		pgx.Identifier{table}.Sanitize(), strings.Join(cols, ", "))
	tag, err := conn.PgConn().CopyFrom(ctx, pr, sql)
	pr.CloseWithError(err) // stops the generator if COPY failed
	if err != nil {
		return 0, fmt.Errorf("seed %s: copy: %w", table, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("seed %s: commit: %w", table, err)
	}
	return tag.RowsAffected(), nil
}

func subscriptionRows(cfg SeedConfig) func(*copyWriter) error {
	names := cfg.ChannelNames()
	return func(w *copyWriter) error {
		for u := int64(1); u <= cfg.Users; u++ {
			for _, ch := range userChannels(cfg, u) {
				w.tuple(2)
				w.text(names[ch])
				w.int64(u)
				if err := w.err; err != nil {
					return err
				}
			}
		}
		return nil
	}
}

func deviceRows(cfg SeedConfig) func(*copyWriter) error {
	at := pgMicros(time.Now())
	return func(w *copyWriter) error {
		var tok []byte
		for u := int64(1); u <= cfg.Users; u++ {
			for j := range userDevices(cfg, u) {
				var platform int16
				platform, tok = deviceToken(cfg, u, j, tok[:0])
				if len(cfg.Locales) == 0 {
					w.tuple(5)
				} else {
					w.tuple(6)
				}
				w.text(cfg.App)
				w.bytes(tok)
				w.int64(u)
				w.int16(platform)
				w.int64(at)
				if len(cfg.Locales) > 0 {
					w.text(cfg.Locales[mix(uint64(u)*4+uint64(j)+0x10ca1e)%uint64(len(cfg.Locales))])
				}
				if err := w.err; err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// userChannels is the index of u's home channel, and of its second one if
// it has one.
func userChannels(cfg SeedConfig, u int64) []int {
	h := mix(uint64(u))
	home := int(h % uint64(cfg.Channels))
	if cfg.Channels > 1 && unit(h>>24) < cfg.Overlap {
		second := (home + 1 + int((h>>48)%uint64(cfg.Channels-1))) % cfg.Channels
		return []int{home, second}
	}
	return []int{home}
}

// userDevices is how many devices u has.
func userDevices(cfg SeedConfig, u int64) int {
	if unit(mix(uint64(u)^0x5eed)>>24) < cfg.TwoDevices {
		return 2
	}
	return 1
}

// Platform codes of the devices table.
const (
	platformIOS     = 1
	platformAndroid = 2
)

const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// deviceToken appends device j of user u's token: 64 hex characters for
// iOS, an FCM-shaped 100-character token for Android. Both start with 16 hex
// digits of u*4+j, so tokens ascend with the user id: the primary key on
// (app, token) then builds from presorted input, a linear pass instead of a
// sort of 12M random strings (the campaign path never reads that index: it
// looks devices up by user, and marks and receipts hash the token).
func deviceToken(cfg SeedConfig, u int64, j int, dst []byte) (int16, []byte) {
	seed := mix(uint64(u)*4 + uint64(j) + 0x9e37)
	var raw [8 * 10]byte
	h := seed
	for i := 0; i < len(raw); i += 8 {
		h = mix(h + uint64(i))
		binary.LittleEndian.PutUint64(raw[i:], h)
	}
	var prefix [8]byte
	binary.BigEndian.PutUint64(prefix[:], uint64(u)*4+uint64(j))
	dst = hex.AppendEncode(dst, prefix[:])
	if unit(seed>>24) < cfg.IOSShare {
		return platformIOS, hex.AppendEncode(dst, raw[:24])
	}
	dst = append(dst, ":APA91b"...)
	for i := range 77 {
		dst = append(dst, b64url[raw[i]&63])
	}
	return platformAndroid, dst
}

// mix is splitmix64's finalizer: a fast, well-spread hash of an integer.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unit maps the low 24 bits of x to [0, 1).
func unit(x uint64) float64 { return float64(x&(1<<24-1)) / (1 << 24) }

// pgMicros is t in PostgreSQL's binary timestamp: microseconds since 2000-01-01 UTC.
func pgMicros(t time.Time) int64 {
	return t.UnixMicro() - time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
}

// copyWriter writes COPY's binary format: a header, then per tuple the
// field count and each field as length + bytes, then a -1 trailer.
type copyWriter struct {
	w   io.Writer
	buf []byte
	err error
}

func newCopyWriter(w io.Writer) *copyWriter {
	cw := &copyWriter{w: w, buf: make([]byte, 0, 1<<20)}
	cw.buf = append(cw.buf, "PGCOPY\n\xff\r\n\x00"...)
	cw.buf = binary.BigEndian.AppendUint32(cw.buf, 0) // flags
	cw.buf = binary.BigEndian.AppendUint32(cw.buf, 0) // header extension
	return cw
}

func (c *copyWriter) tuple(fields int16) {
	if len(c.buf) > 1<<20-512 {
		c.flush()
	}
	c.buf = binary.BigEndian.AppendUint16(c.buf, uint16(fields))
}

func (c *copyWriter) text(s string) {
	c.buf = binary.BigEndian.AppendUint32(c.buf, uint32(len(s)))
	c.buf = append(c.buf, s...)
}

func (c *copyWriter) bytes(b []byte) {
	c.buf = binary.BigEndian.AppendUint32(c.buf, uint32(len(b)))
	c.buf = append(c.buf, b...)
}

func (c *copyWriter) int64(v int64) {
	c.buf = binary.BigEndian.AppendUint32(c.buf, 8)
	c.buf = binary.BigEndian.AppendUint64(c.buf, uint64(v))
}

func (c *copyWriter) int16(v int16) {
	c.buf = binary.BigEndian.AppendUint32(c.buf, 2)
	c.buf = binary.BigEndian.AppendUint16(c.buf, uint16(v))
}

func (c *copyWriter) flush() {
	if c.err == nil && len(c.buf) > 0 {
		_, c.err = c.w.Write(c.buf)
	}
	c.buf = c.buf[:0]
}

func (c *copyWriter) finish() error {
	c.buf = binary.BigEndian.AppendUint16(c.buf, 0xffff)
	c.flush()
	return c.err
}
