package deliver

import (
	"testing"
	"time"
)

// A retry round waits a random time up to RetryBase·2^(n-1), at most
// RetryMax, and never less than the provider's Retry-After (up to
// RetryMax): a provider that asked for a pause (APNs 429, FCM
// QUOTA_EXCEEDED) is not sent the users' retries before it is over.
func TestBackoffHonoursRetryAfter(t *testing.T) {
	h := &Handler{cfg: Config{RetryBase: 10 * time.Millisecond, RetryMax: 5 * time.Second}}
	tests := []struct {
		name       string
		rounds     int
		retryAfter time.Duration
		least      time.Duration
		most       time.Duration
	}{
		{"no Retry-After, first round", 1, 0, time.Millisecond, 10 * time.Millisecond},
		{"no Retry-After, eighth round", 8, 0, time.Millisecond, 1280 * time.Millisecond},
		{"no Retry-After, past RetryMax", 40, 0, time.Millisecond, 5 * time.Second},
		{"Retry-After above the jitter", 1, 2 * time.Second, 2 * time.Second, 2 * time.Second},
		{"Retry-After below the jitter", 12, time.Second, time.Second, 5 * time.Second},
		{"Retry-After past RetryMax", 1, time.Hour, 5 * time.Second, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 500 { // the jitter's range, sampled
				if d := h.backoff(tt.rounds, tt.retryAfter); d < tt.least || d > tt.most {
					t.Fatalf("backoff(%d, %v) = %v, want %v to %v", tt.rounds, tt.retryAfter, d, tt.least, tt.most)
				}
			}
		})
	}
}
