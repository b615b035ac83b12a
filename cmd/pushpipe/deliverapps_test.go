package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// The password of --apns-cert beside --apps is refused as the other
// single-app flags are: the apps file's entries carry their own
// (password_env), and the flag's, by flag, file or environment, was read
// by nobody while the operator believed it set. A password_env of the file
// that names PUSHPIPE_APNS_CERT_PASSWORD is the file's own, and starts.
func TestDeliverCertPasswordBesideApps(t *testing.T) {
	dir := t.TempDir()
	apps := writeFile(t, dir, "apps.toml", "[apps.\"com.example.news\"]\nfcm = { project = \"p\" }\n")
	own := writeFile(t, dir, "own.toml", "[apps.\"com.example.news\"]\napns = { cert = \""+
		filepath.Join(dir, "c.pem")+"\", password_env = \"PUSHPIPE_APNS_CERT_PASSWORD\" }\n")
	password := writeFile(t, dir, "password", "pw\n")
	const refused = " given with --apps: the apps file replaces the single-app provider flags"
	tests := []struct {
		name string
		env  string // PUSHPIPE_APNS_CERT_PASSWORD
		give []string
		want string // in the error; "" for none
	}{
		{"deprecated flag", "", []string{"deliver", "--apps", apps, "--apns-cert-password", "pw"}, "--apns-cert-password" + refused},
		{"file", "", []string{"deliver", "--apps", apps, "--apns-cert-password-file", password}, "--apns-cert-password-file" + refused},
		{"environment, under all", "pw", []string{"all", "--apps", apps}, "deliver: PUSHPIPE_APNS_CERT_PASSWORD" + refused},
		{"environment the file reads", "pw", []string{"deliver", "--apps", own}, ""},
		{"environment without --apps", "pw", []string{"deliver"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PUSHPIPE_APNS_CERT_PASSWORD", tt.env)
			_, err := parseArgs(fresh(takeParser(t).k), tt.give)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("pushpipe %s: %v", strings.Join(tt.give, " "), err)
			case tt.want != "" && (err == nil || !strings.Contains(usageError(err), tt.want)):
				t.Fatalf("pushpipe %s: %v, want %q", strings.Join(tt.give, " "), err, tt.want)
			}
		})
	}
}
