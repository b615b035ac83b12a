package fcm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

const childEndpointEnv = "PUSHPIPE_FCM_TEST_CHILD_ENDPOINT"

// TestSystemPoolHonoursSSLCertFile is how a deployment trusts the
// fakeprovider: no RootCAs, SSL_CERT_FILE=cert.pem. crypto/x509 reads that
// variable once per process, so the send runs in a child test process.
func TestSystemPoolHonoursSSLCertFile(t *testing.T) {
	if endpoint := os.Getenv(childEndpointEnv); endpoint != "" {
		s, err := New(context.Background(), Config{Project: "test-project", Endpoint: endpoint})
		if err != nil {
			t.Fatal(err)
		}
		if r := s.Send(context.Background(), push.Notification{Token: token(1)}); r.Outcome != push.Sent {
			t.Fatalf("Send trusting SSL_CERT_FILE = %+v", r)
		}
		return
	}
	certFile := filepath.Join(t.TempDir(), "fake.pem")
	fake := fakeprovider.Start(t, fakeprovider.Options{CertOut: certFile})
	cmd := exec.Command(os.Args[0], "-test.run=^TestSystemPoolHonoursSSLCertFile$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+certFile, childEndpointEnv+"="+fake.URL()+"/v1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	if n := fake.Summary().Accepted; n != 1 {
		t.Fatalf("fake accepted %d, want 1 from the child", n)
	}
}
