package fcm

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
)

// newSender makes an unauthenticated Sender for project "test-project"
// that trusts fake.
func newSender(t testing.TB, fake *fakeprovider.Server, mutate ...func(*Config)) *Sender {
	t.Helper()
	cfg := Config{Project: "test-project", Endpoint: fake.URL() + "/v1", RootCAs: fake.CertPool()}
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// writeServiceAccount writes a throwaway service-account JSON whose token
// endpoint is tokenURI.
func writeServiceAccount(t testing.TB, project, tokenURI string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sa := map[string]string{
		"type":           "service_account",
		"project_id":     project,
		"private_key_id": "0123456789abcdef",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "pushpipe@" + project + ".iam.gserviceaccount.com",
		"client_id":      "1234567890",
		"token_uri":      tokenURI,
	}
	b, err := json.Marshal(sa)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "service-account.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// token is an FCM-looking registration token.
func token(i int) string { return fmt.Sprintf("fcm-token-%06d:APA91b%040d", i, i) }
