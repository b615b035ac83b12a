package console

import (
	"testing"
	"time"

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

func TestFraction(t *testing.T) {
	tests := []struct {
		name string
		give campaign.Report
		want int64
	}{
		{"nothing yet", campaign.Report{State: campaign.StateSplitting}, 0},
		{"half", campaign.Report{State: campaign.StateRunning, Counts: campaign.Counts{Targets: 100}, Done: 50}, 500},
		{"canceled part way", campaign.Report{State: campaign.StateCanceled, Counts: campaign.Counts{Targets: 100}, Done: 20}, 200},
		{"done", campaign.Report{State: campaign.StateDone, Counts: campaign.Counts{Targets: 100}, Done: 90}, 1000},
	}
	for _, tt := range tests {
		if got := fraction(tt.give); got != tt.want {
			t.Errorf("%s: fraction = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestRateAndETA(t *testing.T) {
	at := time.Date(2026, 12, 2, 23, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		give       campaign.Report
		rate, when string
	}{
		{"running", campaign.Report{State: campaign.StateRunning, SendRate: 99.6, ExpectedFinishMs: 1_030_000}, "100/s", "00:17:10 UTC"},
		{"before the first send", campaign.Report{State: campaign.StateSplitting}, "—", "—"},
		{"scheduled", campaign.Report{State: campaign.StateScheduled, SendAt: &at}, "—", "starts 2026-12-02 23:00 UTC"},
		{"canceled", campaign.Report{State: campaign.StateCanceled, SendRate: 5}, "5/s", "canceled"},
	}
	for _, tt := range tests {
		if got := rate(tt.give); got != tt.rate {
			t.Errorf("%s: rate = %q, want %q", tt.name, got, tt.rate)
		}
		if got := eta(tt.give); got != tt.when {
			t.Errorf("%s: eta = %q, want %q", tt.name, got, tt.when)
		}
	}
}
