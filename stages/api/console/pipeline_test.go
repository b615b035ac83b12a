package console_test

import (
	"html"
	"regexp"
	"strings"
	"testing"
)

// TestOptionalStageSaysSo: on the pipeline page, a stage without a consumer
// group is "not started yet" unless it is optional (the webhook), which
// says so. Every make dev showed the results stream's thousands of entries
// beside "the stage has not started", for a webhook nobody had configured.
func TestOptionalStageSaysSo(t *testing.T) {
	b := newBed(t) // no stage has run: no group anywhere
	_, body := b.get("/ui/pipeline")
	tests := []struct {
		stage string
		says  string
	}{
		{"webhook", "webhook is optional and has not run here"},
		{"deliver", "no consumer group yet: the stage has not started"},
		{"split", "no consumer group yet: the stage has not started"},
	}
	for _, tt := range tests {
		m := regexp.MustCompile(`(?s)<section class="stage" data-stage="` + tt.stage + `".*?</section>`).FindString(body)
		if m == "" {
			t.Fatalf("no section of stage %s in\n%s", tt.stage, body)
		}
		if got := html.UnescapeString(m); !strings.Contains(got, tt.says) {
			t.Errorf("stage %s does not say %q:\n%s", tt.stage, tt.says, got)
		}
	}
	if strings.Contains(regexp.MustCompile(`(?s)<section class="stage" data-stage="webhook".*?</section>`).FindString(body), "has not started") {
		t.Error("the webhook, optional, is said not to have started")
	}
}
