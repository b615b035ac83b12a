package devices

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
	"strings"
)

// How an import tells a file's format from its first bytes and line, and
// the hints its errors give: what a user's file may be, beside what it
// should be.

// unreadable refuses a file that is not text in UTF-8 (or ASCII), by its
// first bytes: each of its lines was skipped as malformed, with a reason
// ("\xff\xfeu\x00..." is not a user id) that did not say what to do.
func unreadable(br *bufio.Reader) error {
	b, _ := br.Peek(2)
	switch {
	case bytes.Equal(b, []byte("\xff\xfe")), bytes.Equal(b, []byte("\xfe\xff")):
		return errors.New("import: the file is UTF-16 text (Excel's \"Unicode Text\"): save it as \"CSV UTF-8\", " +
			"or convert it: iconv -f UTF-16 -t UTF-8 FILE")
	case bytes.Equal(b, []byte("\x1f\x8b")):
		return errors.New("import: the file is gzip-compressed: gunzip -c FILE | pushpipe import subscribers --channel C -")
	}
	return nil
}

// spreadsheetHint says why an id may have become a decimal number: a
// spreadsheet shows long ids as 1.23457E+11 or 42.0 and exports them so,
// the digits lost, and "not a positive integer" alone read as a bad id.
func spreadsheetHint(v string) string {
	v = strings.TrimSpace(v)
	if _, err := strconv.ParseFloat(v, 64); err != nil || !strings.ContainsAny(v, ".eE") {
		return ""
	}
	return ": a spreadsheet's number format? Format the column as text (or a number without decimals) and export it again"
}

// maxHead is how far into a file its first line is looked for.
const maxHead = 4096

// peekFirstLine is the file's first line that is not blank (a CSV reader
// skips blank lines, so the header may follow some), without its line
// break, read ahead without consuming it. It reads on until that line is
// whole: a pipe may deliver "user_" first, and that half of a header told
// one id a line, every line of the CSV then skipped as malformed.
func peekFirstLine(br *bufio.Reader) []byte {
	for n := br.Buffered(); ; n = br.Buffered() + 1 {
		head, err := br.Peek(min(n, maxHead))
		line, whole := firstLine(head)
		if whole || err != nil || len(head) >= maxHead {
			return line
		}
	}
}

// firstLine is the first line of head that is not blank, and whether its
// line break was reached.
func firstLine(head []byte) ([]byte, bool) {
	for len(head) > 0 {
		line, rest, found := bytes.Cut(head, []byte("\n"))
		if len(bytes.TrimSpace(line)) > 0 {
			return bytes.TrimRight(line, "\r"), found
		}
		head = rest
	}
	return head, false
}

// separators are the CSV separators an import reads: Excel writes ';'
// where the decimal mark is a comma (most of Europe), and '\t' for "Text
// (Tab delimited)".
var separators = []rune{',', ';', '\t'}

// separator tells the format from the first line: CSV, with the separator
// that makes one of its fields user_id, when it names a user_id column or
// has a comma (a header without user_id, refused with its text); one id a
// line otherwise.
func separator(head []byte) (rune, bool) {
	for _, sep := range separators {
		for _, f := range bytes.Split(head, []byte(string(sep))) {
			if isUserIDColumn(string(f)) {
				return sep, true
			}
		}
	}
	return ',', bytes.ContainsRune(head, ',') || bytes.Contains(bytes.ToLower(head), []byte("user_id"))
}

// sepName names the separator a headerless line has.
func sepName(line []byte) string {
	if bytes.ContainsRune(line, ';') {
		return "semicolon"
	}
	return "tab"
}

// isUserIDColumn reports whether a header field names the user id column:
// user_id in any case (USER_ID from a database export), spaces and quotes
// around it aside.
func isUserIDColumn(h string) bool {
	return strings.EqualFold(strings.Trim(strings.TrimSpace(h), `"`), "user_id")
}

// blankRecord reports whether every field of rec is empty or spaces.
func blankRecord(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}
