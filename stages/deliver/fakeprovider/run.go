package fakeprovider

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Run starts a fake provider, prints where it listens and where its
// certificate is, and serves until ctx is done; then it drains in-flight
// requests for up to five seconds. Without opts.CertOut the certificate goes
// to the temporary directory.
func Run(ctx context.Context, opts Options, log io.Writer) error {
	if opts.CertOut == "" {
		opts.CertOut = filepath.Join(os.TempDir(), "pushpipe-fakeprovider.pem")
	}
	if opts.Log == nil {
		opts.Log = log
	}
	s, err := New(opts)
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return err
	}
	fmt.Fprintf(log, "fakeprovider listening on %s (APNs host %s, FCM endpoint %s/v1)\n", s.Addr(), s.URL(), s.URL())
	fmt.Fprintf(log, "fakeprovider certificate: %s (clients: SSL_CERT_FILE=%s)\n", opts.CertOut, opts.CertOut)
	fmt.Fprintf(log, "fakeprovider receipts: %s/_receipts/summary\n", s.URL())

	select {
	case err := <-s.serveErr:
		return fmt.Errorf("fakeprovider: serve: %w", err)
	case <-ctx.Done():
	}
	drain, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.shutdown(drain); err != nil {
		return fmt.Errorf("fakeprovider: shutdown: %w", err)
	}
	return nil
}
