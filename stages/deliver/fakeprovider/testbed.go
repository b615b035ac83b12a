package fakeprovider

// The test bed half of the package: starting the fake for a test and the
// credentials the real APNs client needs to talk to it.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// Start runs a fake provider with opts until the test ends.
func Start(t TB, opts Options) *Server {
	t.Helper()
	fake, err := New(opts)
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
func WriteP8(t TB) string {
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

// SendAll calls send for 1..n from workers goroutines at once and fails the
// test on the first send (per worker) that is not push.Sent, then checks
// that fake got n requests and no duplicate: a sender's concurrency test
// against a fake with few streams per connection.
func SendAll(t TB, fake *Server, n, workers int, send func(i int) push.Result) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				if r := send(int(i)); r.Outcome != push.Sent {
					t.Errorf("send %d: %+v", i, r)
					return
				}
			}
		})
	}
	wg.Wait()
	if sum := fake.Summary(); sum.Requests != uint64(n) || sum.Duplicates != 0 {
		t.Errorf("fake saw %d requests, %d duplicates; want %d, 0", sum.Requests, sum.Duplicates, n)
	}
}

// TB is the part of testing.TB the helpers use: the fake is also served by
// the pushpipe binary, which must not link the testing package.
type TB interface {
	Helper()
	Fatal(args ...any)
	Errorf(format string, args ...any)
	TempDir() string
	Cleanup(func())
}
