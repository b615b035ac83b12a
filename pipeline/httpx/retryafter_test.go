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

// RetryAfter reads an HTTP date against the answer's own Date (the
// sender's clock), not this host's: with a receiver's clock off from this
// host's, the pause it asked for was cut to nothing or stretched. Seconds
// need no clock.
func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name       string
		give, date string // Retry-After, Date ("" for none)
		want       time.Duration
	}{
		{"seconds", "120", "", 2 * time.Minute},
		{"seconds, a skewed Date ignored", "120", date(-time.Hour), 2 * time.Minute},
		{"none", "", date(0), 0},
		{"garbage", "soon", date(0), 0},
		{"negative", "-30", date(0), 0},
		{"fractional", "1.5", date(0), 0},
		{"date, no Date", date(30 * time.Second), "", 30 * time.Second},
		{"date, Date in step", date(30 * time.Second), date(0), 30 * time.Second},
		{"date, sender's clock an hour behind", date(-time.Hour + 30*time.Second), date(-time.Hour), 30 * time.Second},
		{"date, sender's clock an hour ahead", date(time.Hour + 30*time.Second), date(time.Hour), 30 * time.Second},
		{"date past by the Date", date(-time.Minute), date(0), 0},
		{"date, unreadable Date", date(30 * time.Second), "yesterday", 30 * time.Second},
		{"date, RFC 850", now.Add(45 * time.Second).Format(time.RFC850), date(0), 45 * time.Second},
		{"date, ANSI C", now.Add(45 * time.Second).Format(time.ANSIC), date(0), 45 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.give != "" {
				h.Set("Retry-After", tt.give)
			}
			if tt.date != "" {
				h.Set("Date", tt.date)
			}
			if got := RetryAfter(h, now); got != tt.want {
				t.Errorf("RetryAfter(Retry-After %q, Date %q) = %v, want %v", tt.give, tt.date, got, tt.want)
			}
		})
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
