package httpx

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		give string
		want time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {"0", 0}, {"-1", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := ParseRetryAfter(tt.give, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tt.give, got, tt.want)
		}
	}
}

// FuzzParseRetryAfter: any header value gives a non-negative delay, and
// delay-seconds are read exactly.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "1", "120", "-3", "Wed, 21 Oct 2037 07:28:00 GMT", "soon",
		"10000000000", "9223372036854775807"} { // past time.Duration's range: must not wrap negative
		f.Add(s)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d := ParseRetryAfter(v, now)
		if d < 0 {
			t.Fatalf("%q: negative delay %v", v, d)
		}
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs > 0 && secs < 1<<32 && d != time.Duration(secs)*time.Second {
			t.Fatalf("%q: got %v", v, d)
		}
	})
}
