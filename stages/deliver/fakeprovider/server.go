// Package fakeprovider is an APNs- and FCM-compatible push provider for tests
// and benchmarks: one TLS HTTP/2 server that the real apns2 and firebase
// clients talk to, with a provider's rate limit, latency, invalid tokens,
// errors and outages on demand, and receipts of every accepted request so a
// test can count deliveries and duplicates.
//
// Endpoints, all on one port:
//
//	POST /3/device/{token}                  APNs
//	POST /v1/projects/{p}/messages:send     FCM v1 (also without /v1)
//	POST /token                             OAuth2 token endpoint for a service
//	                                        account whose token_uri points here
//	GET  /_receipts/summary                 Summary as JSON
//	GET  /_receipts                         accepted requests, NDJSON
//	GET  /_receipts?full=1                  the same with each request's headers
//	                                        and body (Options.KeepRequests)
package fakeprovider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// Server is one fake provider. Create it with New, then Start it (or mount
// Handler in a server of your own).
type Server struct {
	opts    Options
	cert    tls.Certificate
	certPEM []byte
	pool    *x509.CertPool

	// outageEnd is the Unix-nanosecond end of the outage window: Outage
	// after the start, or what POST /_outage set.
	outageEnd atomic.Int64
	// latency is what admit adds to a request, in ns: Latency, or what
	// SetLatency set since.
	latency atomic.Int64
	nextID  atomic.Uint64
	window  window
	rate    rateGate // nil: no TPS cap
	hold    hold
	stats   stats
	rec     *receipts
	handler http.Handler

	srv       *http.Server
	ln        net.Listener
	serveErr  chan error
	closeOnce sync.Once
	closeErr  error
}

// New checks the options, creates the certificate and writes it to
// opts.CertOut, or takes the one there again (certificate). It does not
// listen yet.
func New(opts Options) (*Server, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("fakeprovider: %w", err)
	}
	now := time.Now()
	cert, certPEM, err := certificate(opts.CertOut, now)
	if err != nil {
		return nil, fmt.Errorf("fakeprovider: certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	s := &Server{opts: opts, cert: cert, certPEM: certPEM, pool: pool, rec: newReceipts(now),
		rate: newRateGate(opts.TPSWindow, opts.TPS)}
	s.outageEnd.Store(now.Add(opts.Outage).UnixNano())
	s.latency.Store(int64(opts.Latency))
	s.handler = s.routes()
	return s, nil
}

// Start listens on opts.Listen and serves in the background. The outage
// window (if any) starts now.
func (s *Server) Start() error {
	if s.srv != nil {
		return errors.New("fakeprovider: already started")
	}
	ln, err := net.Listen("tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("fakeprovider: listen %s: %w", s.opts.Listen, err)
	}
	s.srv = &http.Server{
		Handler: s.handler,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{s.cert},
			// APNs clients with certificate auth present one; we take any.
			ClientAuth: tls.RequestClientCert,
			MinVersion: tls.VersionTLS12,
		},
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: int(s.opts.MaxConcurrentStreams)},
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, state http.ConnState) {
			if state == http.StateNew {
				s.stats.connections.Add(1)
			}
		},
		ErrorLog: log.New(s.opts.Log, "fakeprovider: ", 0),
	}
	ln = push.CoalescedListener(ln)
	s.ln = ln
	s.serveErr = make(chan error, 1)
	s.outageEnd.Store(time.Now().Add(s.opts.Outage).UnixNano())
	go func() { s.serveErr <- s.srv.ServeTLS(ln, "", "") }()
	return nil
}

// Addr is the listening address (host:port); empty before Start.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// URL is https://Addr: the APNs host, and with "/v1" appended the FCM
// endpoint.
func (s *Server) URL() string { return "https://" + s.Addr() }

// CertPEM is the server certificate in PEM form.
func (s *Server) CertPEM() []byte { return append([]byte(nil), s.certPEM...) }

// CertPool is a root pool that trusts only this server, for clients in the
// same process (SSL_CERT_FILE is read once per process).
func (s *Server) CertPool() *x509.CertPool { return s.pool.Clone() }

// Handler serves both providers and the receipts endpoints.
func (s *Server) Handler() http.Handler { return s.handler }

// Close stops serving at once, dropping in-flight requests. It is safe to
// call more than once.
func (s *Server) Close() error {
	return s.stop(func() error { return s.srv.Close() })
}

// shutdown stops accepting and waits for in-flight requests until ctx ends.
func (s *Server) shutdown(ctx context.Context) error {
	return s.stop(func() error {
		err := s.srv.Shutdown(ctx)
		if err != nil {
			s.srv.Close()
		}
		return err
	})
}

func (s *Server) stop(how func() error) error {
	if s.srv == nil {
		return nil
	}
	s.closeOnce.Do(func() {
		s.closeErr = how()
		<-s.serveErr
	})
	return s.closeErr
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /3/device/{token}", s.handleAPNs)
	mux.HandleFunc("POST /v1/projects/{project}/messages:send", s.handleFCM)
	// An FCM endpoint configured without "/v1" sends here.
	mux.HandleFunc("POST /projects/{project}/messages:send", s.handleFCM)
	mux.HandleFunc("POST /token", s.handleToken)
	mux.HandleFunc("GET /_receipts/summary", s.handleSummary)
	mux.HandleFunc("GET /_receipts", s.handleReceipts)
	mux.HandleFunc("POST /_outage", s.handleOutage)
	return mux
}

// keep copies what a full receipt of r shows, when requests are kept.
func (s *Server) keep(r *http.Request, body []byte) *request {
	if !s.opts.KeepRequests {
		return nil
	}
	return &request{headers: r.Header.Clone(), body: string(body)}
}
