package apns

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
)

// writeP8 writes a throwaway APNs signing key: ECDSA P-256, PKCS#8 PEM.
func writeP8(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "AuthKey_TEST.p8")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startFake(t testing.TB, opts fakeprovider.Options) *fakeprovider.Server {
	t.Helper()
	fake, err := fakeprovider.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	return fake
}

// newSender makes a token-auth Sender that trusts fake.
func newSender(t testing.TB, fake *fakeprovider.Server, mutate ...func(*Config)) *Sender {
	t.Helper()
	cfg := Config{
		KeyFile: writeP8(t), KeyID: "KEYID12345", TeamID: "TEAMID1234",
		Topic: "com.example.app", Host: fake.URL(), RootCAs: fake.CertPool(),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// hexToken is a 64-hex-digit device token, like the ones iOS hands out.
func hexToken(i int) string { return fmt.Sprintf("%064x", i+1) }
