package httpx

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date; 0 if absent or
// unreadable.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs > 0 {
		// Passed on as given (the deliver stage applies its own bounds),
		// only kept from overflowing.
		return time.Duration(min(secs, math.MaxInt64/int64(time.Second))) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}

// RetryAfter is the Retry-After of an answer's header h, received at now.
// An HTTP date is read against the answer's own Date when it has one: both
// are the sender's clock, and this host's may be off from it. Read against
// now, a receiver whose clock is a minute behind this host's that asked for
// 30 s was asked again at once (the date already past here), and one a
// minute ahead got 90 s. A Date that does not parse leaves now.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if _, err := strconv.ParseInt(v, 10, 64); err != nil {
		if date, err := http.ParseTime(h.Get("Date")); err == nil {
			now = date
		}
	}
	return ParseRetryAfter(v, now)
}
