package console_test

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/stages/api"
)

// TestFormOffersTheAppsTheAPITakes: the new-campaign form offers exactly
// the apps POST /v1/campaigns takes, fills in the only one, and refuses
// another in the API's words, which say where this API's apps come from.
// An apps file's app without app keys was not offered (the form knew the
// keyed apps alone), though campaigns, which take the operator token, may
// name it; the only app was offered but left to be typed; and the refusal
// said "(the --apps file, else PUSHPIPE_APP_KEYS)" whatever the source.
func TestFormOffersTheAppsTheAPITakes(t *testing.T) {
	t.Parallel()
	const path = "/etc/pushpipe/apps.toml"
	file := func(apps ...string) func(*api.Config) {
		return func(c *api.Config) {
			c.Auth.AppKeys = nil
			c.Auth.FileKeys = map[string][]string{"com.example.keyed": {"key-of-keyed-0123456789"}}
			c.AppsFile = &api.AppsFile{Path: path, Apps: apps}
		}
	}
	tests := []struct {
		name    string
		tune    func(*api.Config)
		offered []string
		filled  string // the App field's value
		other   string // an app the API takes that is no app key's ("": none)
		says    string // the refusal of an unknown app
	}{
		{"one app key", func(*api.Config) {}, []string{app}, app, "",
			`App "com.example.unknown" is not known to this API: its apps are those of PUSHPIPE_APP_KEYS ("com.example.news"): use one of them, or add it to PUSHPIPE_APP_KEYS and restart the API.`},
		{"an apps file, one app without keys", file("com.example.keyed", "com.example.nokeys"), []string{"com.example.keyed", "com.example.nokeys"}, "", "com.example.nokeys",
			`App "com.example.unknown" is not known to this API: its apps are those of the apps file ` + path + ` ("com.example.keyed", "com.example.nokeys"): use one of them, or add it to that file and send SIGHUP to the API and deliver.`},
		{"an apps file of one app without keys", file("com.example.nokeys"), []string{"com.example.nokeys"}, "com.example.nokeys", "com.example.nokeys",
			`its apps are those of the apps file ` + path + ` ("com.example.nokeys")`},
		{"pushpipe dev", func(c *api.Config) { c.Dev = true }, []string{app}, app, "",
			`App "com.example.unknown" is not known to this API: pushpipe dev serves only the app it seeded ("com.example.news"): use it.`},
	}
	bed := newHTTPBed(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := bed.withAPI(t, tt.tune)
			_, page := b.get("/ui/campaigns/new")
			var offered []string
			for _, m := range regexp.MustCompile(`<option value="([^"]*)">`).FindAllStringSubmatch(page, -1) {
				offered = append(offered, html.UnescapeString(m[1]))
			}
			if !slices.Equal(offered, tt.offered) {
				t.Errorf("the form offers %q, want %q", offered, tt.offered)
			}
			m := regexp.MustCompile(`<input id="app" name="app" value="([^"]*)"`).FindStringSubmatch(page)
			if m == nil || html.UnescapeString(m[1]) != tt.filled {
				t.Errorf("the App field holds %q, want %q", m, tt.filled)
			}
			post := func(app, id string) (int, string) {
				form := url.Values{"csrf": {formCSRF(t, page)}, "app": {app}, "channels": {"ch0"}, "title": {"Hi"},
					"ttl_seconds": {"86400"}, "when": {"now"}, "id": {id}, "allow_empty": {"1"}}
				status, _, body := b.post("/ui/campaigns", form)
				return status, html.UnescapeString(body)
			}
			if status, body := post("com.example.unknown", fmt.Sprint("unknown-", i)); status != http.StatusBadRequest || !strings.Contains(body, tt.says) {
				t.Errorf("an unknown app: %d, want 400 saying %q; it says %q", status, tt.says, regexp.MustCompile(`(?s)<p class="error"[^>]*>(.*?)</p>`).FindStringSubmatch(body))
			}
			if tt.other == "" {
				return
			}
			// What is offered is taken: campaigns take the operator token,
			// and an app with credentials but no keys is a real target.
			if status, body := post(tt.other, fmt.Sprint("other-", i)); status != http.StatusSeeOther {
				t.Errorf("app %s, offered: %d, want 303 to the campaign created; it says %q", tt.other, status, regexp.MustCompile(`(?s)<p class="error"[^>]*>(.*?)</p>`).FindStringSubmatch(body))
			}
		})
	}
}
