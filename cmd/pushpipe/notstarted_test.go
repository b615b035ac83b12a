package main

import (
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// A scheduled campaign's status says when it starts and that nobody is
// counted yet, not "0 / 0 people" (and "sent 0 failed 0"), which read as a
// campaign that reached no one; one canceled before its start, that it
// never started. One canceled while split cut it says its targets are
// those counted by then, in status and in the list ("≥ 1,234"), where they
// passed for its audience.
func TestStatusAndListSayWhatWasCounted(t *testing.T) {
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	tests := []struct {
		name      string
		give      progressView
		want, not []string
	}{
		{"scheduled", progressView{ID: "s", State: campaign.StateScheduled, SendAt: &at},
			[]string{"  starts ", "nobody counted yet"}, []string{"0 / 0", "sent 0"}},
		{"canceled before its start", progressView{ID: "s", State: campaign.StateCanceled, SendAt: &at},
			[]string{"canceled before its start", "never started"}, []string{"0 / 0", "sent 0"}},
		{"canceled mid-split", progressView{ID: "s", State: campaign.StateCanceled, Counts: campaign.Counts{Targets: 1234, Sent: 1000}, Done: 1000, SplitStopped: true},
			[]string{"1,000 / 1,234 people", "canceled while split was cutting it: 1,234 targets counted until then"}, nil},
		{"canceled after its split", progressView{ID: "s", State: campaign.StateCanceled, Counts: campaign.Counts{Targets: 1234, Sent: 1000}, Done: 1000},
			[]string{"1,000 / 1,234 people", "sent 1,000"}, []string{"split was cutting"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			printProgressView(&out, tt.give, false)
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("status\n%s\nwant %q", out.String(), w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(out.String(), n) {
					t.Errorf("status\n%s\nsays %q", out.String(), n)
				}
			}
		})
	}
	var list strings.Builder
	printCampaigns(&list, []campaign.Report{
		{ID: "cut", State: campaign.StateCanceled, Counts: campaign.Counts{Targets: 1234}, SplitStopped: true},
		{ID: "whole", State: campaign.StateCanceled, Counts: campaign.Counts{Targets: 1234}},
	}, time.Now(), false)
	rows := strings.Split(list.String(), "\n")
	if !strings.Contains(rows[1], "≥ 1,234 (split stopped at cancel)") || strings.Contains(rows[2], "≥") {
		t.Errorf("list\n%s\nwant cut's people as ≥ 1,234 (split stopped at cancel), whole's as 1,234", list.String())
	}
}
