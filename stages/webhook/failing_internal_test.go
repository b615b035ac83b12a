package webhook

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// A receiver that refuses one batch now and then among many it accepts
// (a 413 for one large batch) is not a start and an end line at each
// refusal: a spell that starts within 30s of the last one's end is quiet
// unless it lasts. The clock is the test's, so the 30s windows are exact.
func TestFailingSpellsDoNotFlap(t *testing.T) {
	tests := []struct {
		name  string
		give  string // one letter a second: f a failed delivery, o an accepted POST
		lines int
	}{
		{"one long spell", "fffffooo", 2},
		{"a refusal every 2s among successes", strings.Repeat("fo", 20), 4}, // 40s: first spell, then one louder after 30s
		{"two spells far apart", "fo" + strings.Repeat("o", 40) + "fo", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			now := time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC)
			f := &failing{log: zerolog.New(&buf), now: func() time.Time { return now }}
			for _, c := range tt.give {
				if c == 'f' {
					f.fail(errors.New("answered 413"), 10)
				} else {
					f.ok()
				}
				now = now.Add(time.Second)
			}
			if got := strings.Count(buf.String(), "\n"); got != tt.lines {
				t.Errorf("%d lines, want %d:\n%s", got, tt.lines, buf.String())
			}
		})
	}
}
