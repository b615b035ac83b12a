package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// send refuses an app the API does not know in the API's own words
// (api.KnownApps.Check), said of --app: where the apps come from, the fix
// that works there, at most five apps listed. send had words of its own,
// which listed every app of PUSHPIPE_APP_KEYS however many, and under
// pushpipe dev (PUSHPIPE_DEV, in the env file its second shell sources)
// advised adding the app to PUSHPIPE_APP_KEYS, which dev sets itself.
// Only where send may know less than the API (it read PUSHPIPE_APP_KEYS,
// and the API may run with an apps file) does it add the --apps advice.
// The refusal comes before anything is dialled: no Redis here.
func TestSendRefusesAnUnknownAppAsTheAPIDoes(t *testing.T) {
	appsFile := filepath.Join(t.TempDir(), "apps.toml")
	if err := os.WriteFile(appsFile, []byte("[apps.b]\nfcm = { project = \"p\" }\n[apps.c]\nfcm = { project = \"p\" }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := strings.Repeat("k", 32)
	six := "b=" + key + ",c=" + key + ",d=" + key + ",e=" + key + ",f=" + key + ",g=" + key
	tests := []struct {
		name    string
		args    []string
		appKeys string // PUSHPIPE_APP_KEYS
		dev     string // PUSHPIPE_DEV
		want    string
	}{
		{"app keys", []string{"--channel", "x"}, "b=" + key, "",
			`send: --app "a" is not known to this API: its apps are those of PUSHPIPE_APP_KEYS ("b"): use one of them, ` +
				"or add it to PUSHPIPE_APP_KEYS and restart the API; if the API runs with --apps FILE, give send the same --apps FILE"},
		{"six app keys", []string{"--user", "1"}, six, "",
			`send: --app "a" is not known to this API: its apps are those of PUSHPIPE_APP_KEYS (6 apps): use one of them, ` +
				"or add it to PUSHPIPE_APP_KEYS and restart the API; if the API runs with --apps FILE, give send the same --apps FILE"},
		{"apps file", []string{"--token", "android:abc", "--apps", appsFile}, "a=" + key, "",
			`send: --app "a" is not known to this API: its apps are those of the apps file ` + appsFile + ` ("b", "c"): use one of them, ` +
				"or add it to that file and send SIGHUP to the API and deliver"},
		{"pushpipe dev", []string{"--channel", "x"}, "demo=" + key, "1",
			`send: --app "a" is not known to this API: pushpipe dev serves only the app it seeded ("demo"): use it`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PUSHPIPE_APP_KEYS", tt.appKeys)
			t.Setenv("PUSHPIPE_DEV", tt.dev)
			err := sendCommand(t, append([]string{"send", "--app", "a", "--title", "t", "--redis-addr", "127.0.0.1:1"}, tt.args...)...)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, tt.want)
			}
		})
	}
}
