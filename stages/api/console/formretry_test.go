package console_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/bench"
)

// The new-campaign form sent again (its id the same) after the time it
// asked for came is answered from its record: the campaign it created
// opens. The form checked the time before the record, and told the
// operator "already past; pick a later time" for a campaign that was
// created and about to go out. A new id at a past time is still refused.
func TestFormSentAgainAfterItsTime(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	if _, err := bench.Seed(t.Context(), b.dbURL, bench.SeedConfig{App: app, Users: 10, Channels: 1}); err != nil {
		t.Fatal(err)
	}
	_, page := b.get("/ui/campaigns/new")
	csrf := formCSRF(t, page)
	at := time.Now().UTC().Add(2 * time.Second).Truncate(time.Second)
	form := url.Values{"csrf": {csrf}, "app": {app}, "channels": {"ch0"}, "title": {"Soon"},
		"when": {"later"}, "send_at": {at.Format("2006-01-02T15:04:05")}, "id": {"soon"}}
	if status, loc, body := b.post("/ui/campaigns", form); status != http.StatusSeeOther || !strings.HasPrefix(loc, "/ui/campaigns/soon") {
		t.Fatalf("first send: %d to %q, want 303 to the campaign:\n%s", status, loc, body)
	}
	time.Sleep(time.Until(at.Add(100 * time.Millisecond)))
	tests := []struct {
		name   string
		id     string
		status int
		says   string // in the 400's page
	}{
		{"the same form again", "soon", http.StatusSeeOther, ""},
		{"a new id at that time", "late", http.StatusBadRequest, "is already past"},
	}
	for _, tt := range tests {
		form.Set("id", tt.id)
		status, loc, body := b.post("/ui/campaigns", form)
		if status != tt.status || !strings.Contains(html.UnescapeString(body), tt.says) {
			t.Errorf("%s: %d to %q, want %d saying %q:\n%s", tt.name, status, loc, tt.status, tt.says, body)
		}
	}
}
