package fcm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	const secret = "SECRET-KEY-MATERIAL-0123456789"
	broken := filepath.Join(dir, "broken.json")
	os.WriteFile(broken, []byte(`{"type":"service_account","project_id":"p","private_key":"`+secret+`","client_email":"a@b"}`), 0o600)
	user := filepath.Join(dir, "user.json")
	os.WriteFile(user, []byte(`{"type":"authorized_user","client_id":"x","client_secret":"`+secret+`","refresh_token":"r"}`), 0o600)
	noProject := writeServiceAccount(t, "", "https://127.0.0.1:1/token")

	tests := []struct {
		name string
		give Config
		want string
	}{
		{"google without credentials", Config{Project: "p"}, "credentials file"},
		{"google host spelled out", Config{Project: "p", Endpoint: "https://FCM.googleapis.com/v1"}, "credentials file"},
		{"no project", Config{Endpoint: "https://127.0.0.1:1/v1"}, "project id"},
		{"not a URL", Config{Project: "p", Endpoint: "127.0.0.1:1"}, "http(s)://"},
		{"missing credentials file", Config{CredentialsFile: filepath.Join(dir, "none.json")}, "service account"},
		{"not a service account", Config{CredentialsFile: user}, "service account"},
		{"broken private key", Config{CredentialsFile: broken, Endpoint: "https://127.0.0.1:1/v1"}, "service account"},
		{"no project in credentials", Config{CredentialsFile: noProject}, "no project id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(context.Background(), tt.give)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New() error = %v, want it to mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error leaks key material: %v", err)
			}
		})
	}
}
