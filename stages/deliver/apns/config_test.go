package apns

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
)

func TestNewRejectsBadConfig(t *testing.T) {
	key := fakeprovider.WriteP8(t)
	garbage := filepath.Join(t.TempDir(), "garbage.p8")
	const secret = "SECRET-KEY-MATERIAL-0123456789"
	os.WriteFile(garbage, []byte("-----BEGIN PRIVATE KEY-----\n"+secret+"\n-----END PRIVATE KEY-----\n"), 0o600)
	badDER := filepath.Join(t.TempDir(), "bad-der.p8")
	os.WriteFile(badDER, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte(secret)}), 0o600)
	notPEM := filepath.Join(t.TempDir(), "plain.p8")
	os.WriteFile(notPEM, []byte(secret), 0o600)

	tests := []struct {
		name string
		give Config
		want string
	}{
		{"no credentials", Config{Topic: "t"}, "key file"},
		{"both credentials", Config{KeyFile: key, KeyID: "k", TeamID: "t", CertFile: "c.pem", Topic: "t"}, "not both"},
		{"no key id", Config{KeyFile: key, TeamID: "t", Topic: "t"}, "key id"},
		{"no topic", Config{KeyFile: key, KeyID: "k", TeamID: "t"}, "topic"},
		{"plain http host", Config{KeyFile: key, KeyID: "k", TeamID: "t", Topic: "t", Host: "http://127.0.0.1:1"}, "https"},
		{"too many conns", Config{KeyFile: key, KeyID: "k", TeamID: "t", Topic: "t", Conns: 1000}, "conns"},
		{"missing key file", Config{KeyFile: "/nonexistent/AuthKey.p8", KeyID: "k", TeamID: "t", Topic: "t"}, "load key file"},
		{"corrupt key", Config{KeyFile: garbage, KeyID: "k", TeamID: "t", Topic: "t"}, "load key file"},
		{"key is not PKCS#8", Config{KeyFile: badDER, KeyID: "k", TeamID: "t", Topic: "t"}, "load key file"},
		{"not a PEM key", Config{KeyFile: notPEM, KeyID: "k", TeamID: "t", Topic: "t"}, "load key file"},
		{"corrupt certificate", Config{CertFile: garbage, Topic: "t"}, "load certificate"},
		{"wrong p12", Config{CertFile: notPEM + ".p12", Topic: "t"}, "load certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.give)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New() error = %v, want it to mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), base64.StdEncoding.EncodeToString([]byte(secret))) {
				t.Fatalf("error leaks key material: %v", err)
			}
		})
	}
}

// writeClientPEM writes a self-signed client certificate and its key in one
// PEM file, the shape of an exported APNs certificate.
func writeClientPEM(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "Apple Push Services: com.example.app"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})...)
	path := filepath.Join(t.TempDir(), "apns-client.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
