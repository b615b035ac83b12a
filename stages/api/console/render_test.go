package console

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"

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
		{"scheduled", campaign.Report{State: campaign.StateScheduled}, 0},
		{"nothing yet", campaign.Report{State: campaign.StateRunning}, 0},
		{"half", campaign.Report{State: campaign.StateRunning, Counts: campaign.Counts{Targets: 100}, Done: 50}, 500},
		// Split still finding targets: however many of those found so far
		// are done, the total is not known yet.
		{"splitting", campaign.Report{State: campaign.StateSplitting, Counts: campaign.Counts{Targets: 100}, Done: 100}, -1},
		// A capped campaign cut as it goes: split counted its audience, and
		// the people done are counted against it, not against the few
		// targets of the ranges cut so far.
		{"splitting, audience counted", campaign.Report{State: campaign.StateSplitting, Counts: campaign.Counts{Targets: 100}, Done: 90, Audience: 1000}, 90},
		// Its audience counts subscriptions: muted people and repeats
		// across its channels are reached too.
		{"splitting, muted and repeats", campaign.Report{State: campaign.StateSplitting,
			Counts: campaign.Counts{Targets: 100, Muted: 10, DuplicatesSuppressed: 100}, Done: 90, Audience: 1000}, 200},
		// Ranges still being resolved: every target found so far done is
		// not the campaign done. The bar used to show it full.
		{"running, targets still growing", campaign.Report{State: campaign.StateRunning, Counts: campaign.Counts{Targets: 100}, Done: 100}, 999},
		{"canceled part way", campaign.Report{State: campaign.StateCanceled, Counts: campaign.Counts{Targets: 100}, Done: 20}, 200},
		{"done", campaign.Report{State: campaign.StateDone, Counts: campaign.Counts{Targets: 100}, Done: 90}, 1000},
	}
	for _, tt := range tests {
		if got := fraction(tt.give); got != tt.want {
			t.Errorf("%s: fraction = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestBarOfUnknownLength: a campaign whose targets split is still finding
// shows a bar with no value (indeterminate), on the list and on its page,
// never a full one.
func TestBarOfUnknownLength(t *testing.T) {
	sum := Summary{Campaign: campaign.Campaign{ID: "c1"},
		Progress: campaign.Report{State: campaign.StateSplitting, Counts: campaign.Counts{Targets: 10}, Done: 10}}
	tests := []struct {
		name, block string
		data        any
	}{
		{"campaigns", "rows", listData{Campaigns: []Summary{sum}}},
		{"campaign", "live", campaignData{Summary: sum}},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := templates[tt.name].ExecuteTemplate(&buf, tt.block, page{Data: tt.data}); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		bar := regexp.MustCompile(`<progress[^>]*>`).FindString(buf.String())
		if bar == "" || strings.Contains(bar, "value=") || !strings.Contains(bar, "finding targets") {
			t.Errorf("%s: the bar of a splitting campaign is %s, want one with no value", tt.name, bar)
		}
	}
}

func TestRateAndETA(t *testing.T) {
	at := time.Date(2026, 12, 2, 23, 0, 30, 0, time.UTC)
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	// A finish in ms, hours after now.
	after := func(h time.Duration) int64 { return now.Add(h).UnixMilli() }
	tests := []struct {
		name       string
		give       campaign.Report
		rate, when string
	}{
		{"running", campaign.Report{State: campaign.StateRunning, SendRate: 99.6, ExpectedFinishMs: after(17*time.Minute + 10*time.Second)}, "100/s", "10:17:10 UTC"},
		// 1M users at 20/s: about 14 hours, past midnight.
		{"running until tomorrow", campaign.Report{State: campaign.StateRunning, SendRate: 20, ExpectedFinishMs: after(14*time.Hour + 30*time.Second)}, "20/s", "2026-12-05 00:00:30 UTC"},
		{"before the first send", campaign.Report{State: campaign.StateSplitting}, "—", "—"},
		{"scheduled", campaign.Report{State: campaign.StateScheduled, SendAt: &at}, "—", "starts 2026-12-02 23:00:30 UTC"},
		{"canceled", campaign.Report{State: campaign.StateCanceled, SendRate: 5}, "5.0/s", "canceled"},
		{"canceled before its start", campaign.Report{State: campaign.StateCanceled, SendAt: &at}, "—", "canceled, was scheduled for 2026-12-02 23:00:30 UTC"},
		{"canceled after its start", campaign.Report{State: campaign.StateCanceled, SendAt: &at, StartedAt: &at, SendRate: 5}, "5.0/s", "canceled"},
		{"a trickle", campaign.Report{State: campaign.StateRunning, SendRate: 0.4}, "0.4/s", "—"},
		// Deliver down: no finish that moves on with the clock.
		{"stalled", campaign.Report{State: campaign.StateRunning, SendRate: 99.6, StalledSinceMs: now.Add(-3 * time.Minute).UnixMilli()}, "100/s", "stalled since 09:57:00 UTC"},
		// Behind another campaign's sends, the pipeline moving: no
		// finish either, and not called stalled.
		{"queued", campaign.Report{State: campaign.StateRunning, SendRate: 99.6, QueuedSinceMs: now.Add(-3 * time.Minute).UnixMilli()}, "100/s", "queued since 09:57:00 UTC"},
		// The demo campaign's rate read "11072/s" beside "119,917" sent.
		{"thousands", campaign.Report{State: campaign.StateDone, SendRate: 11072.4}, "11,072/s", "done"},
		{"rounds up", campaign.Report{State: campaign.StateDone, SendRate: 9999.5}, "10,000/s", "done"},
	}
	for _, tt := range tests {
		if got := rate(tt.give); got != tt.rate {
			t.Errorf("%s: rate = %q, want %q", tt.name, got, tt.rate)
		}
		if got := eta(tt.give, now); got != tt.when {
			t.Errorf("%s: eta = %q, want %q", tt.name, got, tt.when)
		}
	}
}

// TestDeadLetterTimesSayUTC: the dead-letter pages write their times in
// UTC and say so, like every other time of the console, whatever location
// the time carries. The list wrote them with no zone, in the time's own
// location.
func TestDeadLetterTimesSayUTC(t *testing.T) {
	at := time.Date(2026, 12, 4, 10, 30, 5, 0, time.FixedZone("KST", 9*3600))
	letter := pipeline.DeadLetter{ID: "1-0", At: at, Stream: "deliver", Name: "deliver", Fields: map[string]string{}}
	tests := []struct {
		name string
		data any
	}{
		{"deadletters", deadLettersData{Letters: []pipeline.DeadLetter{letter}, Total: 1}},
		{"deadletter", letter},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := templates[tt.name].ExecuteTemplate(&buf, "layout", page{Title: "t", Data: tt.data}); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if want := "2026-12-04 01:30:05 UTC"; !strings.Contains(buf.String(), want) {
			t.Errorf("%s: no %q in\n%s", tt.name, want, buf.String())
		}
	}
}

// TestSettled: a campaign's page polls until nothing on it will change;
// a canceled campaign's sends in flight at the cancel are still counted for
// cancelSettles after it.
func TestSettled(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) *time.Time { t := now.Add(-ago); return &t }
	tests := []struct {
		name string
		rep  campaign.Report
		want bool
	}{
		{"running", campaign.Report{State: campaign.StateRunning}, false},
		{"done", campaign.Report{State: campaign.StateDone, FinishedAt: at(0)}, true},
		{"failed", campaign.Report{State: campaign.StateFailed, FinishedAt: at(0)}, true},
		{"canceled just now", campaign.Report{State: campaign.StateCanceled, FinishedAt: at(time.Second)}, false},
		{"canceled long ago", campaign.Report{State: campaign.StateCanceled, FinishedAt: at(cancelSettles)}, true},
		{"canceled, no time known", campaign.Report{State: campaign.StateCanceled}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := settled(tt.rep, now); got != tt.want {
				t.Errorf("settled = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSaysItExpiresBeforeItIsDone: a campaign that at its rate would still
// be sending when it expires says so beside its expected finish, on the
// list and on its page; one that ends in time says nothing of it.
func TestSaysItExpiresBeforeItIsDone(t *testing.T) {
	expires := time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC)
	for _, finish := range []time.Duration{-time.Minute, time.Hour} {
		rep := campaign.Report{State: campaign.StateRunning, Counts: campaign.Counts{Targets: 100}, Done: 10,
			ExpiresAt: expires, ExpectedFinishMs: expires.Add(finish).UnixMilli()}
		sum := Summary{Campaign: campaign.Campaign{ID: "c1"}, Progress: rep}
		for _, tt := range []struct {
			name, block string
			data        any
		}{
			{"campaigns", "rows", listData{Campaigns: []Summary{sum}}},
			{"campaign", "live", campaignData{Summary: sum}},
		} {
			var buf bytes.Buffer
			if err := templates[tt.name].ExecuteTemplate(&buf, tt.block, page{Data: tt.data}); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			said := strings.Contains(buf.String(), `class="expires error"`) &&
				strings.Contains(buf.String(), "2026-12-05 03:00:00 UTC, before it is done at this rate")
			if want := finish > 0; said != want {
				t.Errorf("%s, finish %v after its expiry: says it expires first %v, want %v", tt.name, finish, said, want)
			}
		}
	}
}
