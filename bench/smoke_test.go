package bench

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// TestSmoke100k is CI's bench: 100k users in three overlapping channels, the
// whole pipeline as separate processes against real Redis and PostgreSQL,
// the fake provider over HTTP/2 TLS; every device gets exactly one
// notification.
func TestSmoke100k(t *testing.T) {
	t.Parallel()
	bin := pipelinetest.Binary(t)
	out := t.TempDir()
	start := time.Now()
	res, err := Run(t.Context(), Config{
		Bin:     bin,
		Seed:    SeedConfig{Users: 100_000, Channels: 3, Overlap: 0.2, TwoDevices: 0.2},
		Sink:    SinkFake,
		OutDir:  out,
		Timeout: 2 * time.Minute,
		Stall:   time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	var md strings.Builder
	res.WriteMarkdown(&md)
	t.Logf("in %v:\n%s", time.Since(start).Round(time.Second), md.String())
	if !res.Complete {
		t.Errorf("the campaign did not finish (logs in %s)", out)
	}
	if res.Recipients != 100_000 {
		t.Errorf("recipients = %d, want 100000", res.Recipients)
	}
	if res.Missing != 0 || res.Duplicates != 0 || res.Verification.Unexpected != 0 {
		t.Errorf("missing %d, duplicates %d, unexpected %d; want 0", res.Missing, res.Duplicates, res.Verification.Unexpected)
	}
	if res.Verification.Delivered != res.Devices || res.Verification.DeliverEntries != res.Recipients {
		t.Errorf("delivered %d requests for %d devices, deliver stream held %d people for %d recipients",
			res.Verification.Delivered, res.Devices, res.Verification.DeliverEntries, res.Recipients)
	}
	if res.Campaign.Dups == 0 {
		t.Error("dedupe suppressed nobody, but the channels overlap")
	}
	if _, err := os.Stat(res.Chart); err != nil {
		t.Errorf("chart: %v", err)
	}
}
