package console

import (
	"testing"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

func TestNum(t *testing.T) {
	tests := []struct {
		give int64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {1234567, "1,234,567"}, {-1234, "-1,234"}}
	for _, tt := range tests {
		if got := num(tt.give); got != tt.want {
			t.Errorf("num(%d) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

// The progress bar never shows done before the campaign is: people with
// several devices can make the settled count pass the targets.
func TestFraction(t *testing.T) {
	tests := []struct {
		name string
		give campaign.Report
		want int64
	}{
		{"nothing yet", campaign.Report{State: campaign.StateSplitting}, 0},
		{"half", campaign.Report{State: campaign.StateRunning, Targets: 100, Sent: 40, Muted: 10}, 500},
		{"more devices than people", campaign.Report{State: campaign.StateRunning, Targets: 100, Sent: 150}, 999},
		{"done", campaign.Report{State: campaign.StateDone, Targets: 100, Sent: 90}, 1000},
	}
	for _, tt := range tests {
		if got := fraction(tt.give); got != tt.want {
			t.Errorf("%s: fraction = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestRateAndETA(t *testing.T) {
	r := campaign.Report{State: campaign.StateRunning, Targets: 3000, Sent: 1000, FirstSendMs: 1_000_000, LastSendMs: 1_010_000}
	if got := rate(r); got != "100/s" {
		t.Errorf("rate = %q, want 100/s", got)
	}
	// 2,000 left at 100/s: 20 s after the last send.
	if got := eta(r); got != "00:17:10 UTC" {
		t.Errorf("eta = %q, want 00:17:10 UTC", got)
	}
	if got := rate(campaign.Report{}); got != "—" {
		t.Errorf("rate before any send = %q", got)
	}
}
