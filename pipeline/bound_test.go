package pipeline_test

import (
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
)

// A bound says itself as an operator typed it: --from 0 is the start of
// the stream, not "1970-01-01T00:00:00.000Z", which read as if the epoch
// had been asked for; a time, even one close to the epoch, is a time.
func TestBoundString(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		give      string
		want      string
		wantStart bool
	}{
		{"0", "the start", true},
		{"0-0", "the start", true},
		{"", "open", false},
		{"1", "1970-01-01T00:00:00.001Z", false},
		{"0-1", "0-1", false},
		{"1700000000000-3", "1700000000000-3", false},
		{"2026-05-01T11:00:00Z", "2026-05-01T11:00:00.000Z", false},
		{"15m", "2026-05-01T11:45:00.000Z", false},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			b, err := pipeline.ParseBound(tt.give, now)
			if err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != tt.want || b.IsStart() != tt.wantStart {
				t.Errorf("ParseBound(%q) = %q, start %v; want %q, start %v", tt.give, got, b.IsStart(), tt.want, tt.wantStart)
			}
		})
	}
}
