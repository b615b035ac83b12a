package webhook_test

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// A plain-http URL off this machine starts with a warning that its events,
// and its credentials if any, go unencrypted (never the credentials
// themselves); https and loopback receivers start quietly.
func TestPlainHTTPIsWarned(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name, url string
		warn      string // "" for none
	}{
		{"https", "https://bob:hunter2@hooks.example.com/x", ""},
		{"loopback", "http://127.0.0.1:9000/x", ""},
		{"localhost", "http://localhost:9000/x", ""},
		{"ipv6 loopback", "http://[::1]:9000/x", ""},
		{"plain http", "http://hooks.example.com/x", "cross the network unencrypted; use https"},
		{"plain http with credentials", "http://bob:hunter2@10.0.0.7:8080/x", "and so do the URL's credentials (Basic auth)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs pipelinetest.Logs
			_, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, URL: tt.url,
				Secrets: [][]byte{[]byte("secret-0123456789abcdef")}, Log: zerolog.New(&logs)})
			if err != nil {
				t.Fatal(err)
			}
			got := logs.String()
			if tt.warn == "" && got != "" || !strings.Contains(got, tt.warn) {
				t.Errorf("New(%s) logged %q, want %q", tt.url, got, tt.warn)
			}
			if strings.Contains(got, "hunter2") {
				t.Errorf("the URL's password is in the log: %q", got)
			}
		})
	}
}

// A signing secret short enough to guess is refused when it is the only
// kind in the file, with the command that makes a good one and the steps of
// a rotation to it; beside a long one (a rotation under way) it is warned at
// start, by its place in the file and its length. Neither says its text.
// It was only warned about, and a hook signed with "hunter2" ran.
func TestShortSecret(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name    string
		secrets []string
		warn    string // "" for none
		refused bool
	}{
		{"long enough", []string{"0123456789abcdef"}, "", false},
		{"short", []string{"hunter2"}, "", true},
		{"every one short", []string{"hunter2", "hunter3"}, "", true},
		{"the old one of a rotation short", []string{"hunter2", "0123456789abcdef"}, `"secret":1,"bytes":7`, false},
		{"the new one of a rotation short", []string{"0123456789abcdef", "hunter2"}, `"secret":2,"bytes":7`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var secrets [][]byte
			for _, s := range tt.secrets {
				secrets = append(secrets, []byte(s))
			}
			var logs pipelinetest.Logs
			_, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, URL: "https://hooks.example.com/x",
				Secrets: secrets, Log: zerolog.New(&logs)})
			if tt.refused {
				if err == nil || !strings.Contains(err.Error(), "--secret-file: every secret in it is shorter than 16 characters") ||
					!strings.Contains(err.Error(), "openssl rand -hex 32") || strings.Contains(err.Error(), "hunter") {
					t.Errorf("New: %v, want a refusal saying how to make a secret, without the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := logs.String()
			if tt.warn == "" && got != "" || !strings.Contains(got, tt.warn) || tt.warn != "" && !strings.Contains(got, "short enough to guess") {
				t.Errorf("New logged %q, want %q", got, tt.warn)
			}
			if strings.Contains(got, "hunter2") {
				t.Errorf("the secret is in the log: %q", got)
			}
		})
	}
}
