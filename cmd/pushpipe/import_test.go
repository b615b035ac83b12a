package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// `import subscribers --channel` is checked by the flag's name before the
// file is read, as the other commands' flags are; a missing FILE is said
// with the "-" that reads standard input.
func TestImportChannelFlag(t *testing.T) {
	ids := filepath.Join(t.TempDir(), "ids.txt")
	if err := os.WriteFile(ids, []byte("1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		channel, file, err string // err "": accepted
	}{
		{"news", "-", ""},
		{"101", ids, ""},
		{"a/b", "-", "--channel: has only A-Z a-z 0-9 _ . : - characters"},
		{strings.Repeat("x", 200), "-", "--channel: must be 1–128 characters; got 200"},
		// Left out (an empty --channel is parsed as one left out): said
		// "must be 1–128 characters; got 0".
		{"", ids, "--channel: give the channel to subscribe them to (--channel news)"},
		{"", "", "--channel: give the channel to subscribe them to (--channel news)\nno FILE: name the file of user ids, or give - to read them from standard input (pushpipe import subscribers --channel C - < ids.txt)"},
		// `< ids.txt` without the "-": said with what to type.
		{"news", "", "no FILE: name the file of user ids, or give - to read them from standard input (pushpipe import subscribers --channel news - < ids.txt)"},
		// Run's "open ids.txt: no such file or directory" (exit 1) named
		// neither the argument nor the "-"; a directory failed at line 1.
		{"news", "/nonexistent/ids.txt", `FILE "/nonexistent/ids.txt": no such file: name the file of user ids, or give - to read them from standard input`},
		{"news", os.TempDir(), `is a directory: name the file of user ids in it`},
	}
	for _, tt := range tests {
		t.Run(tt.channel[:min(len(tt.channel), 10)]+tt.file, func(t *testing.T) {
			args := []string{"import", "subscribers", "--channel", tt.channel}
			if tt.file != "" {
				args = append(args, tt.file)
			}
			_, err := kongParse(args...)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
		})
	}
}

// The summary counts what was added: "imported 4 subscribers" of a file
// whose 4 ids were one user repeated, or a re-run, counted ids read.
func TestImportSummary(t *testing.T) {
	tests := []struct {
		name string
		res  devices.ImportResult
		want string
	}{
		{"all new", devices.ImportResult{Rows: 3, Added: 3, Lines: 4},
			"imported 3 subscribers of news from 4 lines in 2ms"},
		{"repeats", devices.ImportResult{Rows: 4, Added: 2, Lines: 4},
			"imported 2 new subscribers of news from 4 lines in 2ms (4 user ids read: 2 repeated in the file or subscribed already)"},
		{"re-run", devices.ImportResult{Rows: 1500, Added: 0, Lines: 1501},
			"imported 0 new subscribers of news from 1,501 lines in 2ms (1,500 user ids read: 1,500 repeated in the file or subscribed already)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := importSummary(tt.res, "news", 2*time.Millisecond); got != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// A failed import says what it kept, and that running it again is safe.
func TestImportFailure(t *testing.T) {
	tests := []struct {
		name string
		err  error
		rows int64
		want string
	}{
		{"nothing kept", errors.New("import: read line 1: is a directory"), 0, "import: read line 1: is a directory"},
		{"interrupted", fmt.Errorf("import subscribers of news (after 400000 rows): %w", context.Canceled), 400_000,
			"interrupted: import subscribers of news (after 400000 rows): context canceled; the first 400,000 user ids are imported, " +
				"and importing the file again adds the rest (an import is idempotent)"},
		{"one kept", errors.New("disk gone"), 1, "disk gone; the first 1 user id is imported, and importing the file again adds the rest (an import is idempotent)"},
		{"read error", errors.New("import line 200017: disk gone"), 200_000,
			"import line 200017: disk gone; the first 200,000 user ids are imported, and importing the file again adds the rest (an import is idempotent)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := importFailure(tt.err, devices.ImportResult{Rows: tt.rows})
			if err.Error() != tt.want || !errors.Is(err, tt.err) {
				t.Fatalf("got  %q\nwant %q (wrapping the error)", err, tt.want)
			}
		})
	}
}

// Import's progress says a small file's size in a unit that shows it: a
// file of a few thousand ids read "0.0 MiB / 0.0 MiB".
func TestImportProgressSizes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give int64
		want string
	}{
		{0, "0 B"},
		{900, "900 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{45_000, "43.9 KiB"},
		{1 << 20, "1.0 MiB"},
		{250 << 20, "250.0 MiB"},
	}
	for _, tt := range tests {
		if got := byteSize(tt.give); got != tt.want {
			t.Errorf("byteSize(%d) = %q, want %q", tt.give, got, tt.want)
		}
	}
}
