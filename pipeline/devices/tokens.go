package devices

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Device is one valid (active) token of a user.
type Device struct {
	UserID   int64
	Platform Platform
	Token    string
	ID       int64  // the row's id: stable for an (app, token), see migration 00003
	Locale   string // as the app registered it ("ko-KR", "pt_BR"), or ""
}

// Querier is what ValidTokens needs: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// validTokensSQL is answered by index-only scans of the partial covering
// index devices_app_user_active (app, user_id) INCLUDE (platform, token, id, locale)
// WHERE state = 0, one probe per user (see the test that checks the plan).
// It is written as a semi-join on unnest rather than "user_id = ANY($2)": on
// PostgreSQL 15 the planner costs ANY over a 1000-element array as 1000 random
// index probes and picks a sequential scan of tables up to a few hundred
// thousand rows (measured: 17-35 ms instead of 3-5 ms at 200k rows); the
// semi-join keeps the nested loop of index probes at every table size, and
// repeated user ids in the input do not repeat devices.
const validTokensSQL = `SELECT user_id, platform, token, id, locale FROM devices
WHERE app = $1 AND state = 0 AND user_id IN (SELECT unnest($2::bigint[]))`

// validTokensOfAppSQL is validTokensSQL for the app the SQL expression app
// gives from $1: a row of another table, read in the same round trip.
func validTokensOfAppSQL(app string) string {
	return `SELECT user_id, platform, token, id, locale FROM devices
WHERE app = ` + app + ` AND state = 0 AND user_id IN (SELECT unnest($2::bigint[]))`
}

// QueueValidTokensOfApp queues on b what ValidTokens returns for the app
// that the SQL expression app gives from its parameter $1, appArg: for a
// caller that knows the app only from a row it reads in the same round
// trip (campaign.QueueTokens, beside campaign.QueueLoad), where ValidTokens
// would be a second one after it. The expression is its owner's (the
// table it reads is not this package's); no app, no devices. done gets
// them once b's results are read; an error is the batch's
// (pgx.BatchResults.Close).
func QueueValidTokensOfApp(b *pgx.Batch, app string, appArg any, users []int64, done func([]Device)) {
	sorted := slices.Clone(users)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	b.Queue(validTokensOfAppSQL(app), appArg, sorted).Query(func(rows pgx.Rows) error {
		c := newCollector(len(sorted) + len(sorted)/4)
		if err := c.add(rows, nil); err != nil {
			return fmt.Errorf("valid tokens of %d users of the app of %v: %w", len(users), appArg, err)
		}
		done(c.devices())
		return nil
	})
}

// validTokensRangeSQL reads every valid device of a span of user ids: one
// descent of the covering index and a walk along its leaves, instead of a
// descent per user. A batch of deliver is a few runs of neighbouring users
// (a partition holds buckets of consecutive ids), so a batch's users are a
// few spans, each one query of a pipelined pgx.Batch. (One query over an
// array of spans, a LATERAL join, is costed at a million rows whatever the
// spans, and PostgreSQL then JIT-compiles it on every call: 4 ms, 8x the
// query. Per span, the planner sees the bounds.)
const validTokensRangeSQL = `SELECT user_id, platform, token, id, locale FROM devices
WHERE app = $1 AND state = 0 AND user_id BETWEEN $2 AND $3`

// maxSpans is the most spans read as spans; more scattered users are
// probed one by one.
const maxSpans = 32

// maxGap is the widest run of unwanted user ids a span walks through rather
// than starting a new span: reading a few index entries costs less than
// another descent.
const maxGap = 8

// spans cuts sorted, distinct users into spans [lo, hi] whose gaps are at
// most maxGap, and says whether they hold users not asked for.
func spans(users []int64) (lo, hi []int64, gaps bool) {
	for i, u := range users {
		if i > 0 && u-hi[len(hi)-1] <= maxGap {
			gaps = gaps || u-hi[len(hi)-1] > 1
			hi[len(hi)-1] = u
			continue
		}
		lo, hi = append(lo, u), append(hi, u)
	}
	return lo, hi, gaps
}

// ValidTokens returns the active tokens of the given users of app, in no
// particular order. Users without a device are simply absent. Pass a
// batch (about 1000 users) per call: one round trip per batch, not per user.
func ValidTokens(ctx context.Context, db Querier, app string, users []int64) ([]Device, error) {
	if len(users) == 0 {
		return nil, nil
	}
	sorted := slices.Clone(users)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	c := newCollector(len(sorted) + len(sorted)/4)
	lo, hi, gaps := spans(sorted)
	if len(lo) > maxSpans || len(lo) > len(sorted)/2 {
		rows, err := db.Query(ctx, validTokensSQL, app, sorted)
		if err != nil {
			return nil, fmt.Errorf("valid tokens of %d users: %w", len(users), err)
		}
		if err := c.add(rows, nil); err != nil {
			return nil, fmt.Errorf("valid tokens of %d users: %w", len(users), err)
		}
		return c.devices(), nil
	}
	var want func(int64) bool
	if gaps {
		want = func(u int64) bool { _, ok := slices.BinarySearch(sorted, u); return ok }
	}
	b := &pgx.Batch{}
	for i := range lo {
		b.Queue(validTokensRangeSQL, app, lo[i], hi[i])
	}
	br := db.SendBatch(ctx, b)
	defer br.Close()
	for range lo {
		rows, err := br.Query()
		if err != nil {
			return nil, fmt.Errorf("valid tokens of %d users: %w", len(users), err)
		}
		if err := c.add(rows, want); err != nil {
			return nil, fmt.Errorf("valid tokens of %d users: %w", len(users), err)
		}
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("valid tokens of %d users: %w", len(users), err)
	}
	return c.devices(), nil
}

// collector gathers the devices of one ValidTokens call. Their tokens share
// one string: one allocation instead of one per device.
type collector struct {
	out    []Device
	tokens strings.Builder // its String does not copy
	ends   []int           // where each device's token ends in tokens
	// locales interns the locales: a campaign's devices have a few dozen
	// between them, so a string per device would be waste.
	locales map[string]string
}

// newCollector makes room for about n devices.
func newCollector(n int) *collector {
	c := &collector{out: make([]Device, 0, n), ends: make([]int, 0, n), locales: map[string]string{}}
	c.tokens.Grow(tokenBytes * n)
	return c
}

// devices are the devices added, their tokens set.
func (c *collector) devices() []Device {
	all, start := c.tokens.String(), 0
	for i, end := range c.ends {
		c.out[i].Token, start = all[start:end], end
	}
	return c.out
}

// locale is raw as an interned string.
func (c *collector) locale(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	if l, ok := c.locales[string(raw)]; ok { // no allocation
		return l
	}
	l := string(raw)
	c.locales[l] = l
	return l
}

// add adds the devices of rows (user_id, platform, token, id, locale) whose user
// want accepts (nil: all) and closes rows.
func (c *collector) add(rows pgx.Rows, want func(int64) bool) error {
	defer rows.Close()
	// The numbers come in binary when pgx prepared the statement (a text
	// column reads the same in either format); otherwise Scan parses text.
	binaryRows := true
	for i, f := range rows.FieldDescriptions() {
		binaryRows = binaryRows && (i == 2 || i == 4 || f.Format == pgx.BinaryFormatCode)
	}
	scan := scanDevice
	if !binaryRows { // the simple protocol answers in text
		scan = scanText(rows)
	}
	for rows.Next() {
		d, tok, locale, ok, err := scan(rows.RawValues(), want)
		if err != nil {
			return err
		}
		if ok {
			d.Locale = c.locale(locale)
			c.tokens.Write(tok)
			c.ends = append(c.ends, c.tokens.Len())
			c.out = append(c.out, d)
		}
	}
	return rows.Err()
}

// tokenBytes is the room reserved per expected device for its token: an
// APNs token is 64 characters, an FCM token about 150.
const tokenBytes = 128

// scanText is scanDevice for rows in text format.
func scanText(rows pgx.Rows) func([][]byte, func(int64) bool) (Device, []byte, []byte, bool, error) {
	return func(_ [][]byte, want func(int64) bool) (d Device, tok, locale []byte, ok bool, err error) {
		err = rows.Scan(&d.UserID, &d.Platform, &tok, &d.ID, &locale)
		return d, tok, locale, err == nil && (want == nil || want(d.UserID)), err
	}
}

// scanDevice decodes one row (binary format: int8, int2, text, int8, text)
// but its token and locale, which it returns as the row's bytes (valid
// until the next row), skipping the row when want says its user is not
// asked for.
func scanDevice(vals [][]byte, want func(int64) bool) (Device, []byte, []byte, bool, error) {
	if len(vals) != 5 || len(vals[0]) != 8 || len(vals[1]) != 2 || len(vals[3]) != 8 {
		return Device{}, nil, nil, false, fmt.Errorf("unexpected row shape %d columns", len(vals))
	}
	user := int64(binary.BigEndian.Uint64(vals[0]))
	if want != nil && !want(user) {
		return Device{}, nil, nil, false, nil
	}
	return Device{
		UserID:   user,
		Platform: Platform(int16(binary.BigEndian.Uint16(vals[1]))),
		ID:       int64(binary.BigEndian.Uint64(vals[3])),
	}, vals[2], vals[4], true, nil
}
