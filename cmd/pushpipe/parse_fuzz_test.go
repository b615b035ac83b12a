package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// FuzzParseSendAt: --send-at is an RFC 3339 time read as the API reads
// send_at, or a positive duration from now ("+10m", "in 2h") made one
// absolute time; anything else is refused naming the flag, never a panic
// or a time before now.
func FuzzParseSendAt(f *testing.F) {
	for _, s := range []string{"2026-01-02T15:04:05Z", "2026-01-02t15:04:05+02:00", "2026-01-02T15:04:05.123456789Z", "+10m", "in 2h",
		"in  2h ", "+1h30m", "+0s", "+-5m", "in -1h", "+", "in ", "10m", "2026-01-02T15:04:05", "2026-01-02 15:04", "now",
		"+2562047h47m16.854775807s", "+2562048h", "9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z", "2026-02-30T00:00:00Z", ""} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 7, 14, 0, 0, 500, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseSendAt(s, now)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "--send-at") {
				t.Fatalf("%q: error %q does not name --send-at", s, err)
			}
			return
		}
		rel, relative := strings.CutPrefix(s, "+")
		if !relative {
			rel, relative = strings.CutPrefix(s, "in ")
			rel = strings.TrimSpace(rel)
		}
		if !relative {
			want, err := campaign.ParseSendAt(s)
			if err != nil || !got.Equal(want) {
				t.Fatalf("%q: read as %v, the API reads %v, %v", s, got, want, err)
			}
			return
		}
		d, err := time.ParseDuration(rel)
		if err != nil || d <= 0 || !got.Equal(now.Add(d).Truncate(time.Second)) || got.Before(now.Truncate(time.Second)) {
			t.Fatalf("%q: read as %v (%v after now)", s, got, got.Sub(now))
		}
	})
}

// FuzzWebhookFilter: --filter is "" (every outcome) or outcome=LIST; a
// list the webhook then runs with names only outcomes it knows: an
// unknown one (a typo, a space) is refused by the config's Validate, never
// silently filtering everything out.
func FuzzWebhookFilter(f *testing.F) {
	for _, s := range []string{"", "outcome=failed", "outcome=failed,invalid", "outcome=sent,sent", "outcome=", "outcome=failed, invalid",
		"outcome=failed,", "outcome=,", "Outcome=failed", "outcomes=failed", "failed", "outcome=FAILED", "outcome=failed=1"} {
		f.Add(s)
	}
	known := []string{pipeline.OutcomeSent, pipeline.OutcomeFailed, pipeline.OutcomeInvalid}
	f.Fuzz(func(t *testing.T, s string) {
		list, err := WebhookFlags{Filter: s}.outcomes()
		if err != nil {
			if !strings.Contains(err.Error(), "--filter") {
				t.Fatalf("%q: error %q does not name --filter", s, err)
			}
			return
		}
		if s != "" && len(list) == 0 {
			t.Fatalf("%q: read as no filter", s)
		}
		cfg := webhook.Config{Outcomes: list}
		verr := cfg.Validate()
		for _, o := range list {
			if !slices.Contains(known, o) && (verr == nil || !strings.Contains(verr.Error(), "--filter")) {
				t.Fatalf("%q: outcome %q let through: %v", s, o, verr)
			}
		}
	})
}
