// Package providertest starts the fake provider for tests and makes the
// credentials the real APNs client needs to talk to it.
package providertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
)

// Start runs a fake provider with opts until the test ends.
func Start(t testing.TB, opts fakeprovider.Options) *fakeprovider.Server {
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

// WriteP8 writes a throwaway APNs signing key (ECDSA P-256, PKCS#8 PEM)
// into the test's temporary directory and returns its path.
func WriteP8(t testing.TB) string {
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
