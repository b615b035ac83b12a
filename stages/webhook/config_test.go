package webhook_test

import (
	"os"
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/stages/webhook"
)

// SafeURL, what logs and dead letters show of the webhook URL, keeps the
// scheme, host and port, and of the path and query (where hooks such as
// Slack's carry their token) only a fingerprint that tells two hooks on one
// host apart; never credentials.
func TestSafeURL(t *testing.T) {
	tests := []struct {
		name   string
		url    string
		want   string   // "" with a path: just that it is redacted
		secret []string // must not appear
	}{
		{"slack-style token in the path", "https://hooks.slack.com/services/T0KEN123/B0T456/s3cr3tT0k3n",
			"https://hooks.slack.com/…(sha256:", []string{"T0KEN123", "B0T456", "s3cr3tT0k3n", "services"}},
		{"credentials and query", "https://bob:hunter2@h.example:8443/hook?token=q5ecret",
			"https://h.example:8443/…(sha256:", []string{"bob", "hunter2", "q5ecret", "hook"}},
		{"no path", "http://h.example:8080", "http://h.example:8080/", nil},
		{"root path, credentials", "http://bob:hunter2@h.example/", "http://h.example/", []string{"hunter2"}},
		{"ipv6", "http://[::1]:9000/x/y", "http://[::1]:9000/…(sha256:", []string{"x/y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := webhook.SafeURL(tt.url)
			if !strings.HasPrefix(got, tt.want) || (strings.HasSuffix(tt.want, ":") && len(got) != len(tt.want)+9) {
				t.Errorf("SafeURL(%q) = %q, want %q…", tt.url, got, tt.want)
			}
			for _, s := range tt.secret {
				if strings.Contains(got, s) {
					t.Errorf("SafeURL(%q) = %q shows %q", tt.url, got, s)
				}
			}
		})
	}
	// Two hooks on one host differ by their fingerprints; one hook's is the
	// same every time.
	a, b := webhook.SafeURL("https://hooks.slack.com/services/T1/B1/x"), webhook.SafeURL("https://hooks.slack.com/services/T1/B1/y")
	if a == b || a != webhook.SafeURL("https://hooks.slack.com/services/T1/B1/x") {
		t.Errorf("two hooks on one host: %q and %q", a, b)
	}
}

// A secret file that cannot be read is refused naming the flag and what the
// file holds, not only "read secret file: open ...: no such file".
func TestLoadSecretsRefusals(t *testing.T) {
	dir := t.TempDir()
	empty := dir + "/empty"
	if err := os.WriteFile(empty, []byte("\n  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"none given", "", "no secret file: give --secret-file, a file holding the secret your receiver verifies signatures with (make one: openssl rand -hex 32 > secret.txt)"},
		{"missing", dir + "/missing", "--secret-file: open " + dir + "/missing: no such file or directory: give a file holding the secret your receiver verifies signatures with, one a line"},
		{"empty", empty, "holds no secret: write one a line (openssl rand -hex 32 >> " + empty + ")"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := webhook.LoadSecrets(tt.path); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadSecrets(%q) = %v, want %q", tt.path, err, tt.want)
			}
		})
	}
}

// Every line of a secret file is a secret, however long: a line past
// bufio.Scanner's 64 KiB stopped the read there, and the secrets below it
// (the one a rotation adds, say) signed nothing.
func TestLoadSecretsLongLines(t *testing.T) {
	long := strings.Repeat("k", 70<<10)
	tests := []struct {
		name, file string
		want       []string
	}{
		{"long line first", long + "\nnew-secret\n", []string{long, "new-secret"}},
		{"long line last", "old-secret\r\n" + long, []string{"old-secret", long}},
		{"between blank lines", "\n  a  \n\n" + long + "\n\nb\n", []string{"a", long, "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := t.TempDir() + "/secrets"
			if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := webhook.LoadSecrets(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("LoadSecrets: %d secrets, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if string(got[i]) != tt.want[i] {
					t.Errorf("secret %d: %d bytes %.10q…, want %d bytes %.10q…", i, len(got[i]), got[i], len(tt.want[i]), tt.want[i])
				}
			}
		})
	}
}
