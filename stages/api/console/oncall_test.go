package console

import (
	"bytes"
	"strings"
	"testing"
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
