package apns

import (
	"context"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

const childHostEnv = "PUSHPIPE_APNS_TEST_CHILD_HOST"

// TestSystemPoolHonoursSSLCertFile is how a deployment trusts the
// fakeprovider: no RootCAs, SSL_CERT_FILE=cert.pem. crypto/x509 reads that
// variable once per process, so the send runs in a child test process.
func TestSystemPoolHonoursSSLCertFile(t *testing.T) {
	if host := os.Getenv(childHostEnv); host != "" {
		s, err := New(Config{KeyFile: fakeprovider.WriteP8(t), KeyID: "KEYID12345", TeamID: "TEAMID1234", Topic: "com.example.app", Host: host})
		if err != nil {
			t.Fatal(err)
		}
		if r := s.Send(context.Background(), push.Notification{Token: hexToken(1)}); r.Outcome != push.Sent {
			t.Fatalf("Send trusting SSL_CERT_FILE = %+v", r)
		}
		return
	}
	certFile := filepath.Join(t.TempDir(), "fake.pem")
	fake := fakeprovider.Start(t, fakeprovider.Options{CertOut: certFile})
	cmd := exec.Command(os.Args[0], "-test.run=^TestSystemPoolHonoursSSLCertFile$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+certFile, childHostEnv+"="+fake.URL())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	if n := fake.Summary().Accepted; n != 1 {
		t.Fatalf("fake accepted %d, want 1 from the child", n)
	}
}

func TestUntrustedServerIsRetry(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	s := newSender(t, fake, func(c *Config) { c.RootCAs = x509.NewCertPool() })
	r := s.Send(context.Background(), push.Notification{Token: hexToken(1)})
	if r.Outcome != push.Retry || !strings.Contains(r.Reason, "certificate") {
		t.Fatalf("Send to an untrusted server = %+v, want retry naming the certificate", r)
	}
}
