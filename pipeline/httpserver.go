package pipeline

import (
	"cmp"
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"golang.org/x/net/netutil"
)

// NewRegistry is a process's metrics registry with the Go and process
// collectors; it is passed down, never global.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// OpsHandler serves /metrics, /healthz and /readyz, unauthenticated by
// contract (deployments keep the port internal).
//
// /healthz says the process is alive: it answers, nothing more, so an
// orchestrator restarts only a process that hangs. /readyz says the process
// can do its work now: ready returns nil (ready.go says what each process
// checks, and what a 503 shows and logs).
func OpsHandler(reg prometheus.Gatherer, ready func(context.Context) error, log zerolog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /readyz", newReadyz(ready, log))
	mountPprof(mux)
	return mux
}

// Serve runs an HTTP server on addr until ctx is cancelled, then shuts it
// down gracefully. An empty addr serves nothing.
func Serve(ctx context.Context, addr string, h http.Handler, log zerolog.Logger) error {
	if addr == "" {
		<-ctx.Done()
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ServeOps(ctx, ln, h, log)
}

// OpsConns caps the connections of a process's --http port at once; more
// wait in the kernel's accept queue. Its clients are a scraper and a few
// probes, and it shares the process's open-file limit with Redis and
// PostgreSQL: uncapped, whoever reached the port could take every
// descriptor and cut the process off from both.
const OpsConns = 64

// ServeOps is Serve on an open listener: at most OpsConns connections.
func ServeOps(ctx context.Context, ln net.Listener, h http.Handler, log zerolog.Logger) error {
	return ServeListener(ctx, netutil.LimitListener(ln, OpsConns), h, log)
}

// ServeListener is Serve on an open listener, with DefaultTimeouts.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, log zerolog.Logger) error {
	return ServeListenerWith(ctx, ln, h, log, Timeouts{})
}

// Timeouts bound how long a client may hold a connection, so a slow or
// stalled client (slowloris) cannot pin the server's connections. Zero fields
// take DefaultTimeouts' values.
type Timeouts struct {
	ReadHeader time.Duration // to send the request headers
	Read       time.Duration // to send the whole request, body included
	Write      time.Duration // from the end of the headers to the end of the answer
	Idle       time.Duration // a keep-alive connection waiting for its next request
}

// DefaultTimeouts are the production values: generous for a 10,000-device
// batch on a slow mobile link, short enough that a stalled client lets go.
func DefaultTimeouts() Timeouts {
	return Timeouts{ReadHeader: 5 * time.Second, Read: 30 * time.Second, Write: 60 * time.Second, Idle: 120 * time.Second}
}

func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts()
	t.ReadHeader = cmp.Or(t.ReadHeader, d.ReadHeader)
	t.Read = cmp.Or(t.Read, d.Read)
	t.Write = cmp.Or(t.Write, d.Write)
	t.Idle = cmp.Or(t.Idle, d.Idle)
	return t
}

// MaxHeaderBytes caps a request's headers (431 past it). Every request of
// the API and the ops port fits in a few KiB (a bearer token, the console's
// cookie); net/http's default of 1 MiB let each of --max-conns connections
// hold a megabyte while it sent its headers.
const MaxHeaderBytes = 64 << 10

// ServeListenerWith is ServeListener with the given timeouts (tests use short
// ones to show a slow client is cut off).
func ServeListenerWith(ctx context.Context, ln net.Listener, h http.Handler, log zerolog.Logger, t Timeouts) error {
	t = t.withDefaults()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
	log.Info().Str("addr", ln.Addr().String()).Msg("http listening")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
