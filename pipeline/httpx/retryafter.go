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
