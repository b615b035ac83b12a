package devices

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ImportChunk is how many subscriptions one transaction of an import
// writes: a crash keeps the chunks before it, and a re-run finds them
// there (imports are idempotent).
const ImportChunk = 200_000

// utf8BOM is the byte order mark some tools write first in a UTF-8 file.
var utf8BOM = []byte("\xef\xbb\xbf")

// maxBadLines is how many malformed lines an import names; it counts all.
const maxBadLines = 100

// BadLine is a line an import skipped, and why.
type BadLine struct {
	Line   int64
	Reason string
}

// ImportResult is what an import did.
type ImportResult struct {
	Rows    int64     // user ids read (a repeated id each time)
	Added   int64     // subscriptions new to the channel: Rows less repeats and those there already
	Lines   int64     // lines read (a CSV header included)
	Bad     int64     // malformed lines, skipped
	BadList []BadLine // the first maxBadLines of them
}

// ImportProgress is told, after each chunk, the bytes and good rows read so
// far.
type ImportProgress func(bytes, rows int64)

// ImportSubscribers subscribes every user id of r to channel: one id a
// line, or CSV with a user_id column (a first line with a comma or
// "user_id" in it is a CSV header).
// Malformed lines are skipped and reported, the rest imported. Each chunk
// goes in with COPY, straight into subscriptions; a chunk that meets
// subscriptions already there (a re-run) is copied into a temporary table
// and merged, so importing the same file twice is one import.
func ImportSubscribers(ctx context.Context, db *pgxpool.Pool, channel string, r io.Reader, progress ImportProgress) (ImportResult, error) {
	var res ImportResult
	if err := ValidateName("channel", channel); err != nil {
		return res, err
	}
	cr := &countingReader{r: r}
	br := bufio.NewReaderSize(cr, 1<<20)
	parse, err := lineParser(br, &res)
	if err != nil {
		return res, err
	}
	// The next chunk is parsed while the last one is copied: parsing is
	// this process's CPU, COPY PostgreSQL's, and on a small machine the
	// two take turns otherwise. The parser owns res.Lines and res.Bad,
	// this loop res.Rows; the parser is done before res is returned.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type chunk struct {
		ids   []int64
		bytes int64 // read so far, at its end
	}
	chunks, free, parsed := make(chan chunk, 1), make(chan []int64, 2), make(chan error, 1)
	free <- make([]int64, 0, ImportChunk)
	free <- make([]int64, 0, ImportChunk)
	go func() {
		defer close(chunks)
		for {
			var ids []int64
			select {
			case ids = <-free:
			case <-ctx.Done():
				parsed <- ctx.Err()
				return
			}
			ids = ids[:0]
			eof := false
			for len(ids) < ImportChunk {
				id, ok, err := parse()
				if err == io.EOF {
					eof = true
					break
				}
				if err != nil {
					parsed <- fmt.Errorf("import line %d: %w", res.Lines, err)
					return
				}
				if ok {
					ids = append(ids, id)
				}
			}
			select {
			case chunks <- chunk{ids, cr.n}:
			case <-ctx.Done():
				parsed <- ctx.Err()
				return
			}
			if eof {
				parsed <- nil
				return
			}
		}
	}()
	var copyErr error
	for c := range chunks {
		if len(c.ids) > 0 {
			added, err := copyChunk(ctx, db, channel, c.ids)
			if err != nil {
				if ctxErr := ctx.Err(); ctxErr != nil {
					// A COPY the caller canceled fails as its connection
					// closed under it ("use of closed network connection"),
					// which read as an outage, not as the Ctrl-C it was.
					err = ctxErr
				}
				copyErr = fmt.Errorf("import subscribers of %s (after %d rows): %w", channel, res.Rows, err)
				if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
					copyErr = fmt.Errorf("%w: is the schema migrated? (pushpipe migrate)", copyErr)
				}
				cancel()
				break
			}
			res.Rows += int64(len(c.ids))
			res.Added += added
		}
		if progress != nil {
			progress(c.bytes, res.Rows)
		}
		free <- c.ids
	}
	parseErr := <-parsed
	if copyErr != nil {
		return res, copyErr
	}
	return res, parseErr
}

// lineParser reads the first line to tell the format, and returns the
// parser of every line: a user id (ok), a malformed line (recorded in res,
// not ok), or io.EOF.
func lineParser(br *bufio.Reader, res *ImportResult) (func() (int64, bool, error), error) {
	// Excel's "CSV UTF-8" and Windows tools start the file with a byte
	// order mark: it would hide the header's user_id, or the first id.
	if b, _ := br.Peek(len(utf8BOM)); bytes.Equal(b, utf8BOM) {
		br.Discard(len(utf8BOM))
	}
	first, err := br.Peek(1)
	if err != nil && err != io.EOF {
		// Not an empty file: a directory, or a read that failed, was
		// taken for one ("imported 0 subscribers", exit status 0).
		return nil, fmt.Errorf("import: read line 1: %w", err)
	}
	if len(first) == 0 {
		return func() (int64, bool, error) { return 0, false, io.EOF }, nil
	}
	if err := unreadable(br); err != nil {
		return nil, err
	}
	head := peekFirstLine(br)
	if bytes.ContainsRune(head, '\r') {
		// Line breaks of CR alone (Excel's "CSV (Macintosh)"): the whole
		// file was one line, a CSV of it imported nothing, and said so
		// as success.
		return nil, errors.New(`import: the file's lines end with CR alone (an old Mac format): convert them to LF, e.g. tr '\r' '\n' < FILE`)
	}
	bad := func(line int64, reason string) (int64, bool, error) {
		res.Bad++
		if len(res.BadList) < maxBadLines {
			res.BadList = append(res.BadList, BadLine{Line: line, Reason: reason})
		}
		return 0, false, nil
	}
	sep, csvFile := separator(head)
	if !csvFile && bytes.ContainsAny(bytes.TrimSpace(head), ";\t") { // a trailing tab is no separator
		// A headerless file of "1;alice" would have every line skipped
		// as malformed, and the summary would not say why.
		return nil, fmt.Errorf("import: line 1 (%.60q) has a %s but no user_id column: a CSV needs a first line naming its columns, "+
			"one of them user_id (separated by commas, semicolons or tabs); one user id a line needs no header", head, sepName(head))
	}
	if !csvFile {
		// One id a line: the fast path.
		return func() (int64, bool, error) {
			line, err := br.ReadSlice('\n')
			if err == io.EOF && len(line) == 0 {
				return 0, false, io.EOF
			}
			if err == bufio.ErrBufferFull {
				// A line longer than the buffer is no user id: it is
				// skipped as the other malformed lines are. It ended the
				// import with "import line 2: bufio: buffer full", named
				// the line before it, and kept none of the file.
				res.Lines++
				// Said before reading on, which reuses line's buffer.
				reason := fmt.Sprintf("%.40q... is not a user id: the line is over %d MiB long", line, br.Size()>>20)
				for err == bufio.ErrBufferFull {
					_, err = br.ReadSlice('\n')
				}
				if err != nil && err != io.EOF {
					return 0, false, err
				}
				return bad(res.Lines, reason)
			}
			if err != nil && err != io.EOF {
				return 0, false, err
			}
			res.Lines++
			line = bytes.TrimSpace(line)
			if len(line) == 0 {
				// Skipped, as the CSV reader skips one: a blank line (an
				// editor's last line, a paste's gap) holds no id to lose,
				// and counting it malformed failed the whole import.
				return 0, false, nil
			}
			id, perr := strconv.ParseInt(string(line), 10, 64)
			if perr != nil || id <= 0 {
				return bad(res.Lines, fmt.Sprintf("%.40q is not a user id (a positive integer)", line)+spreadsheetHint(string(line)))
			}
			return id, true, nil
		}, nil
	}
	cr := csv.NewReader(br)
	cr.Comma, cr.ReuseRecord, cr.FieldsPerRecord = sep, true, -1
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("import: CSV header: %w", err)
	}
	res.Lines = endLine(cr, header)
	col := -1
	for i, h := range header {
		if isUserIDColumn(h) {
			col = i
		}
	}
	if col < 0 {
		// Its text says why: a CSV without a header ("1,alice") has its
		// first row taken for one, and "has no user_id column" alone
		// read as a header the file does not have.
		return nil, fmt.Errorf("import: the CSV header (line 1: %.60q) has no user_id column: a CSV needs a first line naming "+
			"its columns, one of them user_id (separated by commas, semicolons or tabs); without a separator, one user id a line "+
			"needs no header", strings.Join(header, string(sep)))
	}
	// Lines are the file's, as the reader counts them: a record is not a
	// line once blank lines (which the reader skips) or quoted line breaks
	// come before it, and counting records named the wrong lines.
	return func() (int64, bool, error) {
		rec, err := cr.Read()
		if err == io.EOF {
			return 0, false, io.EOF
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			res.Lines = int64(perr.Line)
			return bad(res.Lines, perr.Err.Error())
		} else if err != nil {
			return 0, false, err
		}
		res.Lines = endLine(cr, rec)
		if blankRecord(rec) {
			// Skipped as a blank line is: a spreadsheet exports the rows
			// it once formatted as ",,," or "   ".
			return 0, false, nil
		}
		if col >= len(rec) {
			line, _ := cr.FieldPos(0)
			return bad(int64(line), fmt.Sprintf("no user_id: %d fields, user_id is field %d", len(rec), col+1))
		}
		line, _ := cr.FieldPos(col)
		id, pe := strconv.ParseInt(string(bytes.TrimSpace([]byte(rec[col]))), 10, 64)
		if pe != nil || id <= 0 {
			return bad(int64(line), fmt.Sprintf("user_id %.40q is not a positive integer", rec[col])+spreadsheetHint(rec[col]))
		}
		return id, true, nil
	}, nil
}

// endLine is the line on which rec, the record cr read last, ends: where
// its last field starts, and the line breaks quoted in that field.
func endLine(cr *csv.Reader, rec []string) int64 {
	if len(rec) == 0 {
		return 0
	}
	line, _ := cr.FieldPos(len(rec) - 1)
	return int64(line + strings.Count(rec[len(rec)-1], "\n"))
}

// copyChunk writes one chunk in its own transaction: COPY into
// subscriptions, or, when some are there already, COPY into a temporary
// table merged with ON CONFLICT DO NOTHING. It returns how many
// subscriptions are new: PostgreSQL counts them either way, so the summary
// need not (a set of 10M ids here would cost the import its speed).
//
// A chunk PostgreSQL gives up (a deadlock with another writer of the
// channel's subscriptions, which holds some of its ids in another order)
// is merged again: nothing of it was kept, and merging is idempotent.
func copyChunk(ctx context.Context, db *pgxpool.Pool, channel string, ids []int64) (int64, error) {
	added, err := copyRows(ctx, db, "COPY subscriptions (channel, user_id) FROM STDIN WITH (FORMAT binary)", channel, ids)
	for attempt := 1; ; attempt++ {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23505" && !strings.HasPrefix(pgErr.Code, "40") || attempt > mergeAttempts {
			// 23505: unique_violation, some are there; class 40: a
			// deadlock or serialization failure, the transaction undone.
			return added, err
		}
		added, err = mergeRows(ctx, db, channel, ids)
	}
}

// mergeAttempts is how many times a chunk is merged before its error ends
// the import: a deadlock again and again is no passing collision.
const mergeAttempts = 3

// mergeRows inserts the subscriptions of ids that are not there, in id
// order (the order the API's bulk writes take, which makes deadlocks with
// them rarer), and returns how many it added.
func mergeRows(ctx context.Context, db *pgxpool.Pool, channel string, ids []int64) (int64, error) {
	var added int64
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE import_subscriptions (user_id bigint) ON COMMIT DROP`); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"import_subscriptions"}, []string{"user_id"},
			pgx.CopyFromSlice(len(ids), func(i int) ([]any, error) { return []any{ids[i]}, nil })); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO subscriptions (channel, user_id)
			SELECT $1, user_id FROM import_subscriptions ORDER BY user_id ON CONFLICT DO NOTHING`, channel)
		added = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, err
	}
	return added, nil
}

// copyRows runs sql, a binary COPY of (text, bigint) rows, with (channel,
// id) per id, and returns the rows it wrote. The rows are encoded here, a few bytes appended per row, not
// through pgx's per-value encoding (an interface and a lookup per value):
// at 10M rows that is most of what an import costs this process.
func copyRows(ctx context.Context, db *pgxpool.Pool, sql, channel string, ids []int64) (int64, error) {
	buf := make([]byte, 0, 19+len(ids)*(2+4+len(channel)+4+8)+2)
	buf = append(buf, "PGCOPY\n\xff\r\n\x00"...)
	buf = binary.BigEndian.AppendUint32(buf, 0) // flags
	buf = binary.BigEndian.AppendUint32(buf, 0) // header extension
	for _, id := range ids {
		buf = binary.BigEndian.AppendUint16(buf, 2)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(channel)))
		buf = append(buf, channel...)
		buf = binary.BigEndian.AppendUint32(buf, 8)
		buf = binary.BigEndian.AppendUint64(buf, uint64(id))
	}
	buf = binary.BigEndian.AppendUint16(buf, 0xffff) // trailer
	conn, err := db.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	tag, err := conn.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(buf), sql)
	return tag.RowsAffected(), err
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
