package apns

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/httpx"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// newHTTPClient builds what apns2.NewClient builds (an HTTP/2-only
// transport, one TLS connection per client until the stream limit), but
// without apns2's package-level knobs and with our roots, so that RootCAs nil
// means the system pool (and SSL_CERT_FILE). It has no http.Client.Timeout:
// behind a wrapping transport that costs a goroutine per request, so Send
// puts the timeout on the context instead.
func newHTTPClient(roots *x509.CertPool, cert *tls.Certificate) *http.Client {
	tlsCfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tlsCfg.Certificates = []tls.Certificate{*cert}
	}
	// HTTP/2 only: APNs speaks nothing else.
	var protocols http.Protocols
	protocols.SetHTTP2(true)
	return &http.Client{
		Transport: retryAfterTransport{&http.Transport{
			TLSClientConfig:     tlsCfg,
			Protocols:           &protocols,
			DialContext:         push.DialCoalesced(&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}),
			TLSHandshakeTimeout: 10 * time.Second,
			// A connection carries up to APNs's stream limit (1,000, and
			// fewer until the first request of a connection succeeds); a
			// full one makes the transport dial another. Not
			// StrictMaxConcurrentRequests with a MaxConnsPerHost of 1, which
			// queued requests over the limit on the one connection: they
			// hung until their timeout (golang/go#34941 is the
			// MaxConnsPerHost side of it). The bound only caps the dials of
			// a burst; the first send of a client goes alone
			// (push.Warmup), so a cold burst dials once.
			MaxConnsPerHost: maxConnsPerClient,
			HTTP2: &http.HTTP2Config{
				// Ping an idle connection so a dead one (APNs drops them
				// silently) is noticed before a send hangs on it.
				SendPingTimeout: 15 * time.Second,
				PingTimeout:     15 * time.Second,
			},
		}},
	}
}

// maxConnsPerClient bounds one client's connections to APNs.
const maxConnsPerClient = 16

// retryAfterTransport hands the Retry-After header of a refused request to
// Send: apns2.Response has no headers, so without this it would be lost.
type retryAfterTransport struct {
	base *http.Transport
}

type retryAfterKey struct{}

// withRetryAfter returns a context under which a refused request's
// Retry-After is stored in *d.
func withRetryAfter(ctx context.Context, d *time.Duration) context.Context {
	return context.WithValue(ctx, retryAfterKey{}, d)
}

func (t retryAfterTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil && resp.StatusCode != http.StatusOK {
		if d, ok := req.Context().Value(retryAfterKey{}).(*time.Duration); ok {
			// An HTTP date is read against APNs's own Date, not this
			// host's clock, which may be off from Apple's.
			*d = httpx.RetryAfter(resp.Header, time.Now())
		}
	}
	return resp, err
}

// CloseIdleConnections lets apns2.Client.CloseIdleConnections reach the
// HTTP/2 transport through the wrapper.
func (t retryAfterTransport) CloseIdleConnections() { t.base.CloseIdleConnections() }
