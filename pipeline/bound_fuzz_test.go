package pipeline_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
)

// FuzzParseBound: whatever an operator types for --from / --to is refused
// quoting it, or read as a bound that says itself (String) in words that
// read back as the same bound; an entry id is read only when written whole
// ("ms" or "ms-seq", as Redis takes it), a duration only as one ago.
func FuzzParseBound(f *testing.F) {
	for _, s := range []string{"", "0", "0-0", "1", "0-1", "1700000000000-3", "1700000000000-", "-1700000000000", "1-2-3",
		"18446744073709551615-18446744073709551615", "18446744073709551616", "2026-05-01T11:00:00Z", "2026-05-01t11:00:00z",
		"1960-01-01T00:00:00Z", "15m", "15m ago", "-15m", "+15m", "+15m ago", "--15m", "ago", " 2h30m ", "0s", "9999999h"} {
		f.Add(s)
	}
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		b, err := pipeline.ParseBound(s, now)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(strings.TrimSpace(s))) {
				t.Fatalf("%q: error %q does not quote it", s, err)
			}
			return
		}
		typed := strings.TrimSpace(s)
		if strings.HasSuffix(typed, "-") || strings.HasPrefix(typed, "+") {
			t.Fatalf("%q: a half-written id or a duration of no direction read as %s", s, b)
		}
		if b.IsZero() || b.IsStart() {
			return
		}
		again, err := pipeline.ParseBound(b.String(), now)
		if err != nil || again != b {
			t.Fatalf("%q: read as %s, which reads back as %s, %v", s, b, again, err)
		}
	})
}
