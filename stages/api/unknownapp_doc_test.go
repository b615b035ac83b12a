package api

import (
	"strconv"
	"strings"
	"testing"
)

// The reference's 422 for an unknown app says each place KnownApps.Check
// can name as the apps' source, with the fix there, and that the error
// lists the apps when few: it named the apps file and PUSHPIPE_APP_KEYS
// only, and not pushpipe dev (PUSHPIPE_DEV), whose API has app keys whose
// edit is no fix, nor that the message lists the apps.
func TestUnknownAppDocSaysEveryCase(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	resp := doc.Components.Responses["UnknownApp"]
	if resp == nil || resp.Value == nil || resp.Value.Description == nil {
		t.Fatal("openapi.json: no components.responses.UnknownApp with a description")
	}
	desc := *resp.Value.Description
	tests := []struct {
		name  string
		known KnownApps
		doc   []string // what the description says of this case
	}{
		{"apps file", KnownApps{File: &AppsFile{Path: "/etc/apps.toml", Apps: []string{"b"}}}, []string{"--apps", "SIGHUP"}},
		{"app keys", KnownApps{Keyed: []string{"b"}}, []string{"PUSHPIPE_APP_KEYS", "restart the API"}},
		{"pushpipe dev", KnownApps{Keyed: []string{"demo"}, Dev: true}, []string{"`pushpipe dev` (PUSHPIPE_DEV)", "the app dev seeded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.known.Check("a") == nil {
				t.Fatalf("%+v knows app a: the case is not a 422", tt.known)
			}
			for _, w := range tt.doc {
				if !strings.Contains(desc, w) {
					t.Errorf("UnknownApp's description does not say %q:\n%s", w, desc)
				}
			}
		})
	}
	if w := "lists them when there are at most " + strconv.Itoa(listedApps); !strings.Contains(desc, w) {
		t.Errorf("UnknownApp's description does not say %q (appList):\n%s", w, desc)
	}
}
