package console_test

import (
	"html"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// TestUnstartedCampaignSaysSo: a scheduled campaign's page and the list say
// when it is scheduled and that nobody is counted yet, and one canceled
// before its start that it never started, in place of Targets 0 and Sent
// 0, read as a campaign that reached nobody. One that started shows its
// counts.
func TestUnstartedCampaignSaysSo(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	at := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	when := at.Format("2006-01-02 15:04:05 UTC")
	b.create("later", at)
	b.create("off", at)
	if _, err := campaign.Cancel(t.Context(), b.rdb, b.db, b.keys, "off"); err != nil {
		t.Fatal(err)
	}
	b.create("now", time.Time{})
	tests := []struct {
		id   string
		says string // "": counts shown
	}{
		{"later", "Scheduled for " + when + ": nobody counted yet; split counts its channels' subscribers once it takes it."},
		{"off", "Canceled before its start, " + when + ": never started; nobody was counted or sent to."},
		{"now", ""},
	}
	tags := regexp.MustCompile(`<[^>]*>`)
	figure := func(page, class string) string {
		m := regexp.MustCompile(`<dd class="` + class + `">(.*?)</dd>`).FindStringSubmatch(page)
		if m == nil {
			return "(none)"
		}
		return tags.ReplaceAllString(m[1], "")
	}
	for _, tt := range tests {
		_, page := b.get("/ui/campaigns/" + tt.id)
		text := tags.ReplaceAllString(html.UnescapeString(page), "")
		targets, sent := figure(page, "targets"), figure(page, "sent")
		if tt.says == "" {
			if strings.Contains(page, `class="hint unstarted"`) || targets != "0" || sent != "0" {
				t.Errorf("%s: says it did not start, or Targets %q Sent %q, want 0 and 0", tt.id, targets, sent)
			}
			continue
		}
		if !strings.Contains(text, tt.says) || targets != "—" || sent != "—" {
			t.Errorf("%s: Targets %q Sent %q, want — and %q", tt.id, targets, sent, tt.says)
		}
	}
	_, list := b.get("/ui/campaigns/rows")
	if text := tags.ReplaceAllString(html.UnescapeString(list), ""); !strings.Contains(text, tests[0].says) {
		t.Errorf("the list does not say %q", tests[0].says)
	}
}
