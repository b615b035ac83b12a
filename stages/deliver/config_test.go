package deliver

import (
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// New refuses a backoff under MinRetry from a library caller as pushpipe
// deliver does from its flags (one check, CheckRetry): it took any positive
// one, and at 1ns a failing provider was resent to without a pause up to
// MaxAttempts. Zero is the default; a negative one was read as zero.
func TestRetryFloor(t *testing.T) {
	tests := []struct {
		name       string
		base, most time.Duration
		want       string // New's error's lines about the backoff
	}{
		{"defaults", 0, 0, ""},
		{"at the floor", MinRetry, MinRetry, ""},
		{"tiny base", time.Nanosecond, 0, "--retry-base must be 10ms or more, such as 500ms (each retry round resends to the provider that failed), got 1ns"},
		{"just under", MinRetry - 1, time.Second, "--retry-base must be 10ms or more, such as 500ms (each retry round resends to the provider that failed), got 9.999999ms"},
		{"tiny max", 0, time.Microsecond, "--retry-max must be 10ms or more, such as 500ms (each retry round resends to the provider that failed), got 1µs"},
		{"negative", -time.Second, -time.Second, "--retry-base must be 10ms or more, such as 500ms (each retry round resends to the provider that failed), got -1s\n" +
			"--retry-max must be 10ms or more, such as 500ms (each retry round resends to the provider that failed), got -1s"},
		{"max under base", time.Second, 500 * time.Millisecond, "--retry-max (500ms) is shorter than --retry-base (1s): make it as long or longer"},
		{"base over the default max", 2 * time.Minute, 0, "--retry-max (1m0s) is shorter than --retry-base (2m0s): make it as long or longer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No Redis or database: New refuses the config before it
			// would dial either, and says every reason at once.
			_, err := New(Config{Senders: map[push.Platform]push.Sender{push.IOS: &NullSender{}}, RetryBase: tt.base, RetryMax: tt.most})
			if err == nil {
				t.Fatal("New took a config with no Redis")
			}
			var said []string
			for line := range strings.Lines(err.Error()) {
				if strings.HasPrefix(line, "--retry") {
					said = append(said, strings.TrimSuffix(line, "\n"))
				}
			}
			if got := strings.Join(said, "\n"); got != tt.want {
				t.Errorf("RetryBase %v, RetryMax %v: New said %q of them, want %q", tt.base, tt.most, got, tt.want)
			}
		})
	}
}
