package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// The messages benchmark end to end, small: every message accepted is
// received by the fake provider, and the report says where the CPU went
// while sending (each process, Redis's commands, PostgreSQL's statements).
func TestMessagesBench(t *testing.T) {
	t.Parallel()
	bin := pipelinetest.Binary(t)
	const rate, recipients, seconds = 20, 10, 3
	res, err := RunMessages(t.Context(), Config{
		Bin:    bin,
		Seed:   SeedConfig{Users: 20_000, Channels: 1, TwoDevices: 0.2},
		OutDir: t.TempDir(),
	}, MessagesConfig{Rate: rate, Recipients: recipients, Duration: seconds * time.Second, Warmup: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var md strings.Builder
	res.WriteMarkdown(&md)
	t.Logf("\n%s", md.String())
	// Each message sent, late if need be, on a machine however loaded.
	if res.Failed != 0 || res.Messages != rate*seconds {
		t.Errorf("%d messages accepted, %d failed; want %d, none failed", res.Messages, res.Failed, rate*seconds)
	}
	// Every recipient has a device; a message may name a user twice.
	if res.Receipts < res.Messages || res.Receipts > res.Messages*recipients*2 {
		t.Errorf("%d receipts for %d messages of %d recipients", res.Receipts, res.Messages, recipients)
	}
	for _, role := range []string{"deliver", "dedupe", "fakeprovider", "redis", "postgres", "bench"} {
		if res.CPU[role] <= 0 {
			t.Errorf("no CPU for %s: %v", role, res.CPU)
		}
	}
	// Each receipt was a send in the window or just after it.
	if res.Sends <= 0 || res.Sends > float64(res.Receipts)/seconds*1.5 || !strings.Contains(md.String(), "CPU µs a send") {
		t.Errorf("%.0f sends/s for %d receipts in %d s, or no CPU per send in the report", res.Sends, res.Receipts, seconds)
	}
	// Deliver's own hop is split: the wait for a round, from its histogram.
	if !strings.Contains(md.String(), "| of which: waiting for a deliver round") {
		t.Errorf("the report lacks the wait for a deliver round:\n%s", md.String())
	}
	if len(res.ServerTime.Redis) == 0 || !strings.Contains(md.String(), "FROM devices") {
		t.Errorf("the report lacks Redis's commands or the token lookup:\n%s", md.String())
	}
}
