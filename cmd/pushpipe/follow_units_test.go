package main

import (
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// A message's progress line names what each figure counts: `send --user
// a b c --wait` showed "0.0%  0 / 3 people  sent 3" while deliver's round
// was still out (people are counted done when it ends, devices sent as
// each request returns), which read as nobody reached and 3 sent at once.
func TestProgressLineSaysPeopleDoneAndDevicesSent(t *testing.T) {
	tests := []struct {
		name string
		give progressView
		want string
	}{
		{"message mid-round", progressView{ID: "m", Kind: "message", State: campaign.StateRunning,
			Counts: campaign.Counts{Targets: 3, Sent: 3}}, "  0.0%  0 / 3 people done  3 devices sent"},
		{"one device", progressView{ID: "m", Kind: "message", State: campaign.StateRunning,
			Counts: campaign.Counts{Targets: 1, Sent: 1}, Done: 1}, "100.0%  1 / 1 people done  1 device sent"},
		{"raw tokens", progressView{ID: "m", Kind: "message", State: campaign.StateRunning, RawTokens: true,
			Counts: campaign.Counts{Targets: 2, Sent: 1}, Done: 1}, " 50.0%  1 / 2 tokens done  1 device sent"},
		// Read before dedupe counted its 3 listed users: "0 / 0 people".
		{"message before dedupe read it", progressView{ID: "m", Kind: "message", State: campaign.MessageSending,
			Audience: 3}, "  0.0%  0 / ~3 people done  0 devices sent"},
		{"message half read", progressView{ID: "m", Kind: "message", State: campaign.MessageSending,
			Counts: campaign.Counts{Targets: 1, Muted: 1}, Audience: 3}, " 33.3%  1 / ~3 people done  0 devices sent"},
		{"campaign", progressView{ID: "c", State: campaign.StateRunning,
			Counts: campaign.Counts{Targets: 2000, Sent: 2500}, Done: 1000}, " 50.0%  1,000 / 2,000 people done  2,500 devices sent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if line := progressLine(tt.give, false); !strings.Contains(line, tt.want) {
				t.Errorf("progress line %q, want %q in it", line, tt.want)
			}
		})
	}
}
