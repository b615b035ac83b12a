package devices

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

func importDB(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	url := pipelinetest.MigratedDatabaseT(tb, env.Postgres)
	db, err := pgxpool.New(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(db.Close)
	return db
}

func subscribers(t *testing.T, db *pgxpool.Pool, channel string) (n, sum int64) {
	t.Helper()
	if err := db.QueryRow(t.Context(), `SELECT count(*), coalesce(sum(user_id), 0) FROM subscriptions WHERE channel = $1`, channel).Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	return n, sum
}

// TestImportSkipsBadLines: two malformed lines are named by number, the
// blank line skipped (as CSV's are), the rest imported; a re-run (and an
// overlapping file) imports nothing twice, and says so: Added counts only
// the new subscriptions.
func TestImportSkipsBadLines(t *testing.T) {
	db := importDB(t)
	file := "1\n2\nx3\n4\n\n5\n-6\n7\n"
	var calls int
	res, err := ImportSubscribers(t.Context(), db, "news", strings.NewReader(file), func(b, rows int64) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 5 || res.Added != 5 || res.Bad != 2 || res.Lines != 8 || calls == 0 {
		t.Fatalf("result %+v (progress called %d times), want 5 rows added, 2 bad of 8 lines", res, calls)
	}
	var lines []int64
	for _, b := range res.BadList {
		lines = append(lines, b.Line)
	}
	if fmt.Sprint(lines) != "[3 7]" || !strings.Contains(res.BadList[0].Reason, `"x3"`) {
		t.Fatalf("bad lines %+v, want lines 3 and 7 with their reasons", res.BadList)
	}
	for _, tt := range []struct {
		file        string
		rows, added int64
	}{
		{file, 5, 0},
		{"7\n8\n1\n8\n", 4, 1}, // 8 twice, 1 and 7 there already
	} {
		res, err := ImportSubscribers(t.Context(), db, "news", strings.NewReader(tt.file), nil)
		if err != nil || res.Rows != tt.rows || res.Added != tt.added {
			t.Fatalf("again %q: %+v %v, want %d rows, %d added", tt.file, res, err, tt.rows, tt.added)
		}
	}
	if n, sum := subscribers(t, db, "news"); n != 6 || sum != 1+2+4+5+7+8 {
		t.Fatalf("%d subscribers (sum %d) after three imports, want 6", n, sum)
	}
}

func TestImportCSV(t *testing.T) {
	db := importDB(t)
	file := "name,user_id,plan\n\"Kim, J\",10,pro\nLee,eleven,free\nPark,12\nshort\n"
	res, err := ImportSubscribers(t.Context(), db, "101", strings.NewReader(file), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 2 || res.Bad != 2 || res.BadList[0].Line != 3 || res.BadList[1].Line != 5 {
		t.Fatalf("result %+v, want 2 rows and lines 3 and 5 bad", res)
	}
	for _, tt := range []struct{ file, want string }{
		{"name,plan\nx,y\n", `(line 1: "name,plan") has no user_id column`},
		// No header: its first row is taken for one, and the error shows it.
		{"1,alice\n2,bob\n", `(line 1: "1,alice") has no user_id column: a CSV needs a first line naming its columns`},
	} {
		if _, err := ImportSubscribers(t.Context(), db, "101", strings.NewReader(tt.file), nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Fatalf("CSV %q: %v, want %q", tt.file, err, tt.want)
		}
	}
	if n, sum := subscribers(t, db, "101"); n != 2 || sum != 22 {
		t.Fatalf("%d subscribers (sum %d), want 10 and 12", n, sum)
	}
}

// A file that starts with a UTF-8 byte order mark (Excel's "CSV UTF-8",
// Windows tools) imports as one without it, in either format.
func TestImportByteOrderMark(t *testing.T) {
	db := importDB(t)
	for _, file := range []string{"\xef\xbb\xbfuser_id,name\r\n21,a\r\n22,b\r\n", "\xef\xbb\xbf23\r\n24\r\n"} {
		res, err := ImportSubscribers(t.Context(), db, "bom", strings.NewReader(file), nil)
		if err != nil || res.Bad != 0 {
			t.Fatalf("%q: %+v %v, want every line imported", file, res, err)
		}
	}
	if n, sum := subscribers(t, db, "bom"); n != 4 || sum != 21+22+23+24 {
		t.Fatalf("%d subscribers (sum %d), want 21 to 24", n, sum)
	}
}

// BenchmarkImportSubscribers imports a file of 1M user ids (PUSHPIPE_IMPORT_IDS
// for another size) and, in the same run, COPYs the same file raw into a
// table of the same shape and index (psql's \copy: PostgreSQL parses the
// text itself, nothing is checked), and reports the import's speed as a
// fraction of that (copy_ratio; DESIGN asks ≥ 0.8).
func BenchmarkImportSubscribers(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("PUSHPIPE_IMPORT_IDS"); v != "" {
		fmt.Sscan(v, &n)
	}
	path := filepath.Join(b.TempDir(), "ids.txt")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range n {
		fmt.Fprintln(w, int64(i)*7+1)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	db := importDB(b)
	ctx := context.Background()
	// The indexes of subscriptions too (migration 00011's by user): the
	// floor pays for the same table, the import only for what it adds.
	if _, err := db.Exec(ctx, `CREATE TABLE raw_subscriptions (channel text NOT NULL DEFAULT 'bench', user_id bigint NOT NULL,
		created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (channel, user_id));
		CREATE INDEX raw_subscriptions_user ON raw_subscriptions (user_id, channel)`); err != nil {
		b.Fatal(err)
	}
	var raw, imp time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, t := range []string{"raw_subscriptions", "subscriptions"} {
			if _, err := db.Exec(ctx, "TRUNCATE "+t); err != nil {
				b.Fatal(err)
			}
		}
		// Alternate which goes first, so that a machine getting busier or
		// quieter during the run weighs on both alike (run -benchtime 2x+).
		steps := []func(){
			func() { raw += rawCopy(b, db, path) },
			func() {
				in, _ := os.Open(path)
				defer in.Close()
				t0 := time.Now()
				res, err := ImportSubscribers(ctx, db, "bench", in, nil)
				imp += time.Since(t0)
				if err != nil || res.Rows != int64(n) {
					b.Fatalf("import: %+v %v", res, err)
				}
			},
		}
		if i%2 == 1 {
			steps[0], steps[1] = steps[1], steps[0]
		}
		steps[0]()
		steps[1]()
	}
	b.StopTimer()
	b.ReportMetric(float64(n)*float64(b.N)/imp.Seconds(), "ids/s")
	b.ReportMetric(float64(n)*float64(b.N)/raw.Seconds(), "raw_copy_ids/s")
	b.ReportMetric(raw.Seconds()/imp.Seconds(), "copy_ratio")
}

// rawCopy is psql's \copy of the file: its bytes as they are into COPY.
func rawCopy(b *testing.B, db *pgxpool.Pool, path string) time.Duration {
	in, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	conn, err := db.Acquire(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	t0 := time.Now()
	if _, err := conn.Conn().PgConn().CopyFrom(context.Background(), in, `COPY raw_subscriptions (user_id) FROM STDIN`); err != nil {
		b.Fatal(err)
	}
	return time.Since(t0)
}

// A file that fails to read at once (a directory) or past its first chunks
// ends the import with the error and the line it reached, the chunks
// before it kept; a database that
// refuses a chunk ends it with that error, the parser stopped with it.
func TestImportStopsOnErrors(t *testing.T) {
	db := importDB(t)
	var file strings.Builder
	for i := range ImportChunk + 10 {
		fmt.Fprintln(&file, i+1)
	}
	// At once: it is not an empty file ("imported 0 subscribers").
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	for _, r := range []io.Reader{dir, iotest.ErrReader(errors.New("disk gone"))} {
		if _, err := ImportSubscribers(t.Context(), db, "none", r, nil); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Fatalf("a file that fails its first read: %v, want the error, at line 1", err)
		}
	}
	broken := io.MultiReader(strings.NewReader(file.String()), iotest.ErrReader(errors.New("disk gone")))
	res, err := ImportSubscribers(t.Context(), db, "big", broken, nil)
	if err == nil || !strings.Contains(err.Error(), "disk gone") || !strings.Contains(err.Error(), "line") {
		t.Fatalf("error %v, want the read error with its line", err)
	}
	if n, _ := subscribers(t, db, "big"); n != ImportChunk || res.Rows != ImportChunk {
		t.Fatalf("%d subscribers kept (result %+v), want the first chunk's %d", n, res, ImportChunk)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := ImportSubscribers(ctx, db, "late", strings.NewReader(file.String()), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("import under a canceled context: %v, want context.Canceled", err)
	}
	if n, _ := subscribers(t, db, "late"); n != 0 {
		t.Fatalf("%d subscribers written under a canceled context", n)
	}
}

// TestImportNamesFileLines: a malformed line is named by its line in the
// file, whatever came before it: CSV's blank lines (skipped) and quoted
// line breaks made the record count, which named it, fall behind the
// lines. A line too long to be an id is one malformed line, not the end
// of the import ("bufio: buffer full", naming the line before it).
func TestImportNamesFileLines(t *testing.T) {
	db := importDB(t)
	long := "12" + strings.Repeat("7", 1<<20) + "x"
	tests := []struct {
		name  string
		file  string
		rows  int64
		lines int64
		bad   string // the bad lines' numbers
	}{
		{"csv blank lines", "user_id,name\n1,a\n\n2,b\nx,c\n\n\n4,e\nzz,f\n", 3, 9, "[5 9]"},
		{"csv quoted line breaks", "name,user_id\n\"Kim\nJ\",1\n\"Lee\r\nK\",x\n3,\"4\n\"\n", 2, 7, "[5]"},
		{"csv CRLF", "user_id,name\r\n\r\n5,a\r\nshort\r\n6,b\r\n", 2, 5, "[4]"},
		{"csv field count", "name,user_id\n\na\nb,7\n", 1, 4, "[3]"},
		{"csv bad quote", "user_id,name\n\n8,\"a\"x\n9,b\n", 1, 4, "[3]"},
		{"plain long line", "1\n2\n" + long + "\n3\n", 3, 4, "[3]"},
		{"plain long last line", "1\n" + long, 1, 2, "[2]"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := ImportSubscribers(t.Context(), db, fmt.Sprint("l", i), strings.NewReader(tt.file), nil)
			if err != nil {
				t.Fatal(err)
			}
			var lines []int64
			for _, b := range res.BadList {
				lines = append(lines, b.Line)
			}
			if res.Rows != tt.rows || res.Lines != tt.lines || fmt.Sprint(lines) != tt.bad {
				t.Errorf("%d rows of %d lines, bad %v (%+v); want %d rows of %d lines, bad %s", res.Rows, res.Lines, lines, res.BadList, tt.rows, tt.lines, tt.bad)
			}
			// A long line is quoted from its start, not from what was
			// read after it.
			if strings.Contains(tt.name, "long") && (len(res.BadList) != 1 || !strings.HasPrefix(res.BadList[0].Reason, `"12777`)) {
				t.Errorf("bad lines %v, want one, the long line quoted from its start", lines)
				for _, b := range res.BadList {
					t.Logf("line %d: %.80s", b.Line, b.Reason)
				}
			}
		})
	}
}

// TestImportFormats: blank lines are skipped in both formats, and CSV rows
// of empty fields (",,," from a spreadsheet) as blank lines; Excel's
// semicolon CSV (where the decimal mark is a comma) and tab-separated text
// are read by the separator that makes a header field user_id, in any
// case; a headerless semicolon file is refused naming its separator,
// where every line of it was skipped as malformed. The format is told from
// the whole first line, however the reader delivers it. UTF-16 and gzip
// files are refused saying how to convert them.
func TestImportFormats(t *testing.T) {
	db := importDB(t)
	tests := []struct {
		name  string
		file  string
		added int64
		sum   int64  // of the ids added
		bad   string // the bad lines' numbers
		err   string // "" : imported
		slow  bool   // read a byte at a time, as a pipe may deliver it
	}{
		{"plain blank lines", "1\n\n2\n   \n\r\n3\n\n", 3, 6, "[]", "", false},
		{"plain trailing tabs", "20\t\n21 \t\n", 2, 41, "[]", "", false},
		{"plain leading blank", "\n\n4\n5", 2, 9, "[]", "", false},
		{"csv blank lines", "user_id\n\n1\n\n2\n", 2, 3, "[]", "", false},
		{"csv empty rows", "name,user_id,plan\n\"Kim\",19,pro\n,,\n  ,  ,\n\"\",\"\",\"\"\n,x,\n", 1, 19, "[6]", "", false},
		{"csv leading blank", "\n\nname,user_id\na,6\nb,x\n", 1, 6, "[5]", "", false},
		{"semicolon", "name;user_id;plan\r\n\"Kim; J\";10;pro\r\nLee;x;free\r\n", 1, 10, "[3]", "", false},
		{"semicolon quoted", "\xef\xbb\xbf\"user_id\";\"name\"\n\"11\";\"a,b\"\n12;c\n", 2, 23, "[]", "", false},
		{"tab", "USER_ID\tname\n13\tx\n14\ty\n", 2, 27, "[]", "", false},
		{"upper case", "User_Id,name\n15,a\n", 1, 15, "[]", "", false},
		{"repeats", "7\n7\n8\n7\n", 2, 15, "[]", "", false},
		{"semicolon headerless", "1;alice\n2;bob\n", 0, 0, "", `line 1 ("1;alice") has a semicolon but no user_id column`, false},
		{"tab headerless", "1\talice\n", 0, 0, "", `has a tab but no user_id column`, false},
		{"utf-16", "\xff\xfeu\x00s\x00e\x00r\x00", 0, 0, "", `the file is UTF-16 text (Excel's "Unicode Text"): save it as "CSV UTF-8"`, false},
		{"utf-16 big-endian", "\xfe\xff\x001\x00\n", 0, 0, "", `the file is UTF-16 text`, false},
		{"gzip", "\x1f\x8b\x08\x00", 0, 0, "", `the file is gzip-compressed: gunzip -c FILE | pushpipe import`, false},
		{"csv CR line breaks", "user_id,name\r1,a\r2,b\r", 0, 0, "", `the file's lines end with CR alone (an old Mac format): convert them to LF`, false},
		{"plain CR line breaks", "1\r2\r3\r", 0, 0, "", `the file's lines end with CR alone`, false},
		{"pipe header", "user_id|name\n1|a\n", 0, 0, "", `has no user_id column`, false},
		{"csv a byte at a time", "\nname,user_id\na,16\nb,17\n", 2, 33, "[]", "", true},
		{"semicolon a byte at a time", "user_id;name\n18;a\n", 1, 18, "[]", "", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			channel := fmt.Sprint("f", i)
			var r io.Reader = strings.NewReader(tt.file)
			if tt.slow {
				r = iotest.OneByteReader(r)
			}
			res, err := ImportSubscribers(t.Context(), db, channel, r, nil)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lines := []int64{}
			for _, b := range res.BadList {
				lines = append(lines, b.Line)
			}
			n, sum := subscribers(t, db, channel)
			if res.Added != tt.added || n != tt.added || sum != tt.sum || fmt.Sprint(lines) != tt.bad {
				t.Fatalf("%+v: %d subscribers (sum %d), bad %v; want %d (sum %d), bad %s", res, n, sum, lines, tt.added, tt.sum, tt.bad)
			}
		})
	}
}

// A malformed id says what is wrong with it; one a spreadsheet turned into
// a decimal number says so, in either format.
func TestImportBadLineReasons(t *testing.T) {
	db := importDB(t)
	const hint = ": a spreadsheet's number format? Format the column as text"
	tests := []struct{ file, reason string }{
		{"1.23457E+11\n", `"1.23457E+11" is not a user id (a positive integer)` + hint},
		{"42.0\n", `"42.0" is not a user id (a positive integer)` + hint},
		{"x42\n", `"x42" is not a user id (a positive integer)`},
		{"user_id,name\n1.5e3,a\n", `user_id "1.5e3" is not a positive integer` + hint},
		{"user_id,name\nInf,a\n", `user_id "Inf" is not a positive integer`},
		{"user_id,name\n-7,a\n", `user_id "-7" is not a positive integer`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			res, err := ImportSubscribers(t.Context(), db, "reasons", strings.NewReader(tt.file), nil)
			if err != nil || len(res.BadList) != 1 {
				t.Fatalf("%+v %v, want one bad line", res, err)
			}
			got := res.BadList[0].Reason
			if !strings.HasPrefix(got, tt.reason) || !strings.Contains(tt.reason, hint) && strings.Contains(got, "spreadsheet") {
				t.Fatalf("reason %q, want %q", got, tt.reason)
			}
		})
	}
}

// An import meeting a writer that holds the same subscriptions in the
// other order (the API adding a list of the channel's users while the
// file goes in) is the one PostgreSQL fails when it breaks the deadlock:
// the chunk is retried, not the import ended with "deadlock detected" and
// the rest of the file left out.
func TestImportRetriesADeadlockedChunk(t *testing.T) {
	db := importDB(t)
	ctx := t.Context()
	other, err := db.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Release()
	// Only the import's side looks for the deadlock, so it is the one
	// PostgreSQL fails, whichever waited first.
	if _, err := other.Exec(ctx, `SET deadlock_timeout = '10min'`); err != nil {
		t.Fatal(err)
	}
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `INSERT INTO subscriptions (channel, user_id) VALUES ('dl', 2)`); err != nil {
		t.Fatal(err)
	}
	type result struct {
		res ImportResult
		err error
	}
	done := make(chan result, 1)
	go func() { // writes 1, then waits for 2, which tx holds
		res, err := ImportSubscribers(context.Background(), db, "dl", strings.NewReader("1\n2\n3\n"), nil)
		done <- result{res, err}
	}()
	pipelinetest.Eventually(t, 30*time.Second, "the import to wait for user 2", func() bool {
		var n int
		db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'COPY subscriptions%'`).Scan(&n)
		return n > 0
	})
	// tx now waits for 1, which the import holds: a cycle.
	if _, err := tx.Exec(ctx, `INSERT INTO subscriptions (channel, user_id) VALUES ('dl', 1)`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.res.Rows != 3 || r.res.Added != 1 {
		t.Fatalf("import: %+v %v, want 3 rows read, user 3 added", r.res, r.err)
	}
	if n, sum := subscribers(t, db, "dl"); n != 3 || sum != 6 {
		t.Fatalf("%d subscribers (sum %d), want 1, 2 and 3", n, sum)
	}
}

// A database without the schema says what to run, not only that a
// relation is missing.
func TestImportIntoUnmigratedDatabase(t *testing.T) {
	db, err := pgxpool.New(t.Context(), pipelinetest.DatabaseT(t, env.Postgres))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = ImportSubscribers(t.Context(), db, "news", strings.NewReader("1\n"), nil)
	if err == nil || !strings.Contains(err.Error(), `relation "subscriptions" does not exist`) ||
		!strings.HasSuffix(err.Error(), "is the schema migrated? (pushpipe migrate)") {
		t.Fatalf("error %v, want it to name the missing table and pushpipe migrate", err)
	}
}

// An import canceled while it sends a chunk to PostgreSQL (Ctrl-C) ends
// with context.Canceled, not with the closed connection pgx cancels the
// COPY by ("use of closed network connection", read as an outage).
func TestImportCanceledMidChunk(t *testing.T) {
	db := importDB(t)
	// A long channel name makes the chunk tens of MB: the COPY is still
	// being sent when it stops at user 1, which tx holds.
	channel := strings.Repeat("c", MaxChannelName)
	tx, err := db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(t.Context(), `INSERT INTO subscriptions (channel, user_id) VALUES ($1, 1)`, channel); err != nil {
		t.Fatal(err)
	}
	var file strings.Builder
	for i := range ImportChunk {
		fmt.Fprintln(&file, i+1)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := ImportSubscribers(ctx, db, channel, strings.NewReader(file.String()), nil)
		done <- err
	}()
	pipelinetest.Eventually(t, 30*time.Second, "the import's COPY to wait", func() bool {
		var n int
		db.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'COPY subscriptions%'`).Scan(&n)
		return n > 0
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("import canceled mid-chunk: %v, want context.Canceled", err)
	}
}
