package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// The password of --apns-cert needs no flag, which shows in process listings
// and the pod spec: it comes from --apns-cert-password-file
// (PUSHPIPE_APNS_CERT_PASSWORD_FILE) or PUSHPIPE_APNS_CERT_PASSWORD. The old
// flag still works, so an upgrade starts as before, but says at start what
// replaces it. Each case builds deliver's senders as a start does, from a
// certificate whose key only the right password opens.
func TestAPNsCertPasswordNeedsNoFlag(t *testing.T) {
	const password = "s3cret-cert-pw"
	dir := t.TempDir()
	cert := writeEncryptedCertPEM(t, dir, password)
	file := writeFile(t, dir, "password", password+"\n")
	wrong := writeFile(t, dir, "wrong", "not-it\n")
	deliver := []string{"deliver", "--apns-cert", cert, "--apns-topic", "com.example.app"}
	all := []string{"all", "--apns-cert", cert, "--apns-topic", "com.example.app"}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string // "": the senders are built
		warn    bool
	}{
		{"file by flag", nil, slices.Concat(deliver, []string{"--apns-cert-password-file", file}), "", false},
		{"file by flag, under all", nil, slices.Concat(all, []string{"--apns-cert-password-file", file}), "", false},
		{"file by environment", map[string]string{"PUSHPIPE_APNS_CERT_PASSWORD_FILE": file}, deliver, "", false},
		{"password by environment", map[string]string{"PUSHPIPE_APNS_CERT_PASSWORD": password}, deliver, "", false},
		{"deprecated flag", nil, slices.Concat(deliver, []string{"--apns-cert-password", password}), "", true},
		{"deprecated flag, under all", nil, slices.Concat(all, []string{"--apns-cert-password", password}), "", true},
		// The file's password is the one apns2 is given: a wrong one
		// does not open the key.
		{"wrong password in the file", nil, slices.Concat(deliver, []string{"--apns-cert-password-file", wrong}), "load certificate", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			flags := deliverFlags(t, tt.args...)
			var logs bytes.Buffer
			_, _, closeAll, _, _, err := flags.providers(&deps{ctx: t.Context(), log: zerolog.New(&logs)})
			if err == nil {
				closeAll()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("pushpipe %s: %v", strings.Join(tt.args, " "), err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("pushpipe %s: error %v, want one saying %q", strings.Join(tt.args, " "), err, tt.wantErr)
			}
			warned := strings.Contains(logs.String(), `"level":"warn"`) &&
				strings.Contains(logs.String(), "--apns-cert-password-file (PUSHPIPE_APNS_CERT_PASSWORD_FILE) or PUSHPIPE_APNS_CERT_PASSWORD")
			if warned != tt.warn {
				t.Errorf("pushpipe %s: warned %v, want %v; logs:\n%s", strings.Join(tt.args, " "), warned, tt.warn, logs.String())
			}
			if strings.Contains(logs.String(), password) || err != nil && strings.Contains(err.Error(), password) {
				t.Errorf("the password is shown: %v\n%s", err, logs.String())
			}
		})
	}
}

// A password given twice, a file and another way, is refused before
// anything starts: which one to use would be a guess. So is a file that
// cannot be read.
func TestAPNsCertPasswordGivenTwiceIsRefused(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "password", "pw\n")
	deliver := []string{"deliver", "--apns-cert", "c.p12", "--apns-topic", "com.example.app"}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"file and flag", nil, slices.Concat(deliver, []string{"--apns-cert-password-file", file, "--apns-cert-password", "pw"}),
			"--apns-cert-password-file (PUSHPIPE_APNS_CERT_PASSWORD_FILE) and --apns-cert-password both give the password of --apns-cert: keep one, the file"},
		{"file and environment", map[string]string{"PUSHPIPE_APNS_CERT_PASSWORD": "pw"}, slices.Concat(deliver, []string{"--apns-cert-password-file", file}),
			"--apns-cert-password-file (PUSHPIPE_APNS_CERT_PASSWORD_FILE) and PUSHPIPE_APNS_CERT_PASSWORD both give the password"},
		{"both by environment, under all", map[string]string{"PUSHPIPE_APNS_CERT_PASSWORD": "pw", "PUSHPIPE_APNS_CERT_PASSWORD_FILE": file},
			[]string{"all", "--apns-cert", "c.p12", "--apns-topic", "com.example.app"}, "and PUSHPIPE_APNS_CERT_PASSWORD both give the password"},
		{"unreadable file", nil, slices.Concat(deliver, []string{"--apns-cert-password-file", filepath.Join(dir, "missing")}),
			"--apns-cert-password-file: open " + filepath.Join(dir, "missing")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := fresh(takeParser(t).k).Parse(tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("pushpipe %s: %v, want it refused saying %q", strings.Join(tt.args, " "), err, tt.want)
			}
		})
	}
}

// deliverFlags parses args (deliver or all) and returns deliver's flags.
func deliverFlags(t *testing.T, args ...string) *DeliverFlags {
	t.Helper()
	kctx, err := fresh(takeParser(t).k).Parse(args)
	if err != nil {
		t.Fatalf("pushpipe %s: %v", strings.Join(args, " "), err)
	}
	switch c := kctx.Selected().Target.Addr().Interface().(type) {
	case *stageCmd:
		return c.Own.(*DeliverFlags)
	case *AllCmd:
		return c.deliver()
	}
	t.Fatalf("pushpipe %s: not deliver or all", strings.Join(args, " "))
	return nil
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeEncryptedCertPEM writes a self-signed client certificate and its key,
// encrypted under password, in one PEM file: an exported APNs certificate
// with a password, in the one encrypted form apns2 reads.
func writeEncryptedCertPEM(t *testing.T, dir, password string) string {
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
	//lint:ignore SA1019 legacy PEM encryption is what apns2's FromPemFile decrypts (x509.DecryptPEMBlock).
	block, err := x509.EncryptPEMBlock(rand.Reader, "PRIVATE KEY", pkcs8, []byte(password), x509.PEMCipherAES256)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, "apns-client.pem", string(append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(block)...)))
}
