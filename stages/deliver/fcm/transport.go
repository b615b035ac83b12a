package fcm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// newBaseTransport is an HTTP/2-first transport trusting roots (nil: the
// system pool, which honours SSL_CERT_FILE).
func newBaseTransport(roots *x509.CertPool) *http.Transport {
	return &http.Transport{
		Proxy:             http.ProxyFromEnvironment,
		DialContext:       push.DialCoalesced(&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}),
		ForceAttemptHTTP2: true,
		TLSClientConfig:   &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		// FCM speaks HTTP/2: a connection carries up to the endpoint's
		// stream limit (about 100 at Google), and a full one makes the
		// transport dial another. Not StrictMaxConcurrentRequests with a
		// MaxConnsPerHost of 1, which queued the requests over the limit
		// on the one connection: they hung until their timeout, some after
		// the provider had taken them, and were sent again (golang/go#34941
		// is the MaxConnsPerHost side of it). The bound only caps the dials
		// of a burst; the first send goes alone (push.Warmup), so a cold
		// burst dials once. An endpoint that speaks only HTTP/1.1 would get
		// 16 requests at a time: give it HTTP/2.
		MaxConnsPerHost:       maxConns,
		MaxIdleConns:          1000,
		MaxIdleConnsPerHost:   1000,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		HTTP2: &http.HTTP2Config{
			// Ping a quiet connection so a dead one is noticed before a
			// send hangs on it.
			SendPingTimeout: 15 * time.Second,
			PingTimeout:     15 * time.Second,
		},
	}
}

// maxConns bounds the connections to the endpoint: ×100 streams (Google's
// limit) it carries more than any --in-flight a process is likely to use.
const maxConns = 16

// oneShotTransport makes every Send exactly one HTTP request.
//
// firebase's messaging client retries network errors and 503 itself, up to
// four times with backoff of up to two minutes (internal.RetryConfig, not
// configurable from outside the module). The deliver stage has its own
// retries, rate limit and backoff; hidden retries underneath would multiply
// requests during an outage and hold a worker for minutes. So once the
// first attempt is over (its answer read and closed, or its transport
// error returned) this transport records it and cancels the send's
// context: a retry the SDK then wants ends at once with the context error,
// and Send classifies the recorded attempt instead. A further attempt that
// got past that anyway is refused here without a request.
type oneShotTransport struct {
	base http.RoundTripper
}

// attempt is the one request of a Send, as the transport saw it.
type attempt struct {
	cancel context.CancelFunc
	done   bool
	status int
	header http.Header
	err    error // transport error
}

type attemptKey struct{}

var errSecondAttempt = errors.New("fcm: request already made for this send")

func (t oneShotTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	a, _ := req.Context().Value(attemptKey{}).(*attempt)
	switch {
	case a == nil: // not a Send
		return t.base.RoundTrip(req)
	case a.done:
		a.cancel()
		return nil, errSecondAttempt
	}
	a.done = true
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		a.err = err
		a.cancel()
		return nil, err
	}
	a.status, a.header = resp.StatusCode, resp.Header
	// Cancel only when the SDK has read and closed the answer: an HTTP/2
	// body read after its context ends fails.
	resp.Body = cancelOnClose{resp.Body, a.cancel}
	return resp, nil
}

// CloseIdleConnections reaches the base transport through the wrapper.
func (t oneShotTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
