package console

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// rendered is page p of template name, its block, as text without tags.
func rendered(t *testing.T, name, block string, p page) string {
	t.Helper()
	var buf bytes.Buffer
	if err := templates[name].ExecuteTemplate(&buf, block, p); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return buf.String()
}

// TestErrorLeadsBackToItsSection: an error page links back to the section
// it was in. Every one said "Back to the campaigns", under "There is no dead
// letter …" and "There is no direct message …" alike.
func TestErrorLeadsBackToItsSection(t *testing.T) {
	tests := []struct {
		nav  string
		want string
	}{
		{"deadletters", `<a href="/ui/deadletters" id="back">Back to the dead letters</a>`},
		{"messages", `<a href="/ui/messages" id="back">Back to the direct messages</a>`},
		{"pipeline", `<a href="/ui/pipeline" id="back">Back to the pipeline</a>`},
		{"campaigns", `<a href="/ui/campaigns" id="back">Back to the campaigns</a>`},
		{"", `<a href="/ui/campaigns" id="back">Back to the campaigns</a>`}, // signed out, or no section
	}
	for _, tt := range tests {
		if got := rendered(t, "error", "layout", page{Title: "Not found", Nav: tt.nav, Error: "No such thing."}); !strings.Contains(got, tt.want) {
			t.Errorf("nav %q: no %s in\n%s", tt.nav, tt.want, got)
		}
	}
}

// TestCappedDeadCountsSayMore: past the oldest 1,000 dead letters the
// pipeline page counts per stage and receiver, each count is a floor and
// says so ("1,000+"); under it, each is exact. "1,000" stood beside a
// total of 8,695 as if exact.
func TestCappedDeadCountsSayMore(t *testing.T) {
	for _, capped := range []bool{false, true} {
		d := pipelineData{DLQ: 8695, DeadCapped: capped,
			Stages:    []stageRow{{Stage: "webhook", Dead: 1000}},
			Receivers: []receiverRow{{Group: "crm", Dead: 1000}}}
		got := rendered(t, "pipeline", "live", page{Data: d})
		for _, want := range []string{`<td class="n dead">1,000+</td>`, `>1,000+</a></td>`, `Dead letters from this stage: 1,000+`} {
			if said := strings.Contains(got, want); said != capped {
				t.Errorf("capped %v: says %s: %v, want %v", capped, want, said, capped)
			}
		}
	}
}

// TestUnstartedCountsNothing: a campaign not started (scheduled, or
// canceled before its start) shows no count at all, on the list and on its
// page. Targets and Sent read "—" while Failed, Muted and Invalid read 0,
// as if it had gone out without a failure.
func TestUnstartedCountsNothing(t *testing.T) {
	at := time.Date(2026, 12, 7, 21, 12, 0, 0, time.UTC)
	for _, state := range []string{campaign.StateScheduled, campaign.StateCanceled} {
		sum := Summary{Campaign: campaign.Campaign{ID: "c1", Title: "Evening"}, Progress: campaign.Report{State: state, SendAt: &at}}
		for _, tt := range []struct {
			name, block string
			data        any
		}{
			{"campaigns", "rows", listData{Campaigns: []Summary{sum}}},
			{"campaign", "live", campaignData{Summary: sum}},
		} {
			got := rendered(t, tt.name, tt.block, page{Data: tt.data})
			for _, count := range []string{"targets", "sent", "failed", "muted", "invalid"} {
				m := regexp.MustCompile(`<dd class="` + count + `">([^<]*)</dd>`).FindStringSubmatch(got)
				if m == nil || m[1] != "—" {
					t.Errorf("%s %s: %s is %q, want —", state, tt.name, count, m)
				}
			}
		}
	}
}
