package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/net/netutil"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/api"
)

// ListenFlags bound what clients can hold of the API process: connections,
// the time an idle one is kept, request bodies and device writes. pushpipe
// api and pushpipe all share them, so the API under all is tuned as alone.
type ListenFlags struct {
	MaxBodyBytes    int64         `name:"max-body-bytes" default:"${max_body_bytes}" help:"Largest device batch body accepted (413 past it); every other route has its own, smaller cap."`
	DeviceWriteRate float64       `name:"device-write-rate" default:"${device_write_rate}" help:"Device writes per second per app key in this process (N API replicas behind a balancer allow N times it); a batch counts each device; bursts of twice that, or one full batch; 429 with Retry-After past it. 0 disables. The operator token is not limited."`
	MaxConns        int           `name:"max-conns" default:"10000" help:"Client connections served at once on the API address; more wait in the kernel's accept queue. Lowered to fit the open-file limit, less ${fd_reserve} descriptors kept for Redis, PostgreSQL and the other ports."`
	IdleTimeout     time.Duration `name:"idle-timeout" default:"30s" help:"Close a keep-alive connection idle this long."`
	OperatorListen  string        `name:"operator-listen" placeholder:"ADDR" help:"Also serve the API on this address, outside --max-conns (its own ${operator_conns} connections), so the operator's tools get in when clients hold every connection. Keep it internal, like --http."`
	MaxBodyMemory   int64         `name:"max-body-memory" default:"${max_body_memory}" help:"Request body bytes held at once over all requests; past it, 503 + Retry-After before a body is read."`
	AuthFailRate    float64       `name:"auth-fail-rate" default:"${auth_fail_rate}" help:"Wrong tokens (bearer or console sign-in) a client address may send per second once --auth-fail-burst is spent; past it, 429 with Retry-After before its token is compared. Right tokens are never slowed. Negative disables."`
	AuthFailBurst   int           `name:"auth-fail-burst" default:"${auth_fail_burst}" help:"Wrong tokens a client address may send at once."`
	TrustedProxies  string        `name:"trusted-proxies" env:"PUSHPIPE_TRUSTED_PROXIES" default:"${trusted_proxies}" help:"Peers (comma-separated CIDR prefixes) whose X-Forwarded-For or Forwarded names the client that --auth-fail-rate counts: the load balancer or ingress in front. Empty: every peer is the client."`
}

// Validate refuses, before anything connects and every problem at once,
// the limits that would stop the API serving or that it would quietly
// replace: --max-conns 0 accepted no connection at all
// (netutil.LimitListener), a body cap of 0 was the package's default, a
// negative write rate limited nothing, an --idle-timeout of 0 was the
// read timeout and a negative one closed every kept-alive connection at
// once. A --trusted-proxies that does not parse is said here too (it was
// said after the flags, exit 1).
func (f ListenFlags) Validate() error {
	var errs []error
	for _, n := range []struct {
		flag string
		v    int64
	}{{"--max-conns", int64(f.MaxConns)}, {"--max-body-bytes", f.MaxBodyBytes}, {"--max-body-memory", f.MaxBodyMemory}} {
		if n.v < 1 {
			errs = append(errs, fmt.Errorf("%s must be at least 1, got %d", n.flag, n.v))
		}
	}
	if f.DeviceWriteRate < 0 {
		errs = append(errs, fmt.Errorf("--device-write-rate must be 0 (no limit) or more writes per second, got %g", f.DeviceWriteRate))
	}
	if f.IdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--idle-timeout must be a positive duration such as 30s, got %v", f.IdleTimeout))
	}
	if f.AuthFailRate > 0 && f.AuthFailBurst < 1 {
		errs = append(errs, fmt.Errorf("--auth-fail-burst must be at least 1 wrong token (--auth-fail-rate 0 turns the throttle off), got %d", f.AuthFailBurst))
	}
	if _, err := api.ParseTrustedProxies(f.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// limits is cfg with the flags' body, device-write and wrong-token limits.
func (f ListenFlags) limits(cfg api.Config) (api.Config, error) {
	cfg.MaxBodyBytes, cfg.MaxBodyMemory, cfg.DeviceWriteRate = f.MaxBodyBytes, f.MaxBodyMemory, f.DeviceWriteRate
	cfg.AuthFailRate, cfg.AuthFailBurst = f.AuthFailRate, f.AuthFailBurst
	if f.AuthFailRate == 0 {
		cfg.AuthFailRate = -1 // 0 from the command line is "none", not the package's default
	}
	var err error
	cfg.TrustedProxies, err = api.ParseTrustedProxies(f.TrustedProxies)
	return cfg, err
}

// Descriptors kept out of --max-conns: Redis and PostgreSQL connections, the
// --http port, the operator's connections, files.
const (
	fdReserve     = 512
	operatorConns = 64
)

// serve serves h until ctx ends: on listen at most MaxConns connections at
// once (fewer if the open-file limit says so), and on OperatorListen, if
// set, up to operatorConns more.
func (f ListenFlags) serve(ctx context.Context, listen string, h http.Handler, log zerolog.Logger) error {
	conns := f.MaxConns
	if limit := openFileLimit(); limit > 0 && conns > limit-fdReserve {
		conns = max(limit-fdReserve, 1)
		log.Warn().Int("max_conns", conns).Int("open_file_limit", limit).
			Msg("--max-conns lowered to fit the open-file limit; raise the limit (ulimit -n) to serve more")
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	var op net.Listener
	if f.OperatorListen != "" {
		if op, err = net.Listen("tcp", f.OperatorListen); err != nil {
			ln.Close()
			return fmt.Errorf("--operator-listen: %w", err)
		}
	}
	return serveCapped(ctx, ln, op, conns, f.IdleTimeout, h, log)
}

// serveCapped serves h on ln, at most conns connections at once, and on op
// (when not nil) at most operatorConns, both closing connections idle for
// idle. The cap counts open connections, idle keep-alives included: idle
// bounds how long one that sends nothing holds its place.
func serveCapped(ctx context.Context, ln, op net.Listener, conns int, idle time.Duration, h http.Handler, log zerolog.Logger) error {
	t := pipeline.Timeouts{Idle: idle}
	fns := []func(context.Context) error{func(ctx context.Context) error {
		return pipeline.ServeListenerWith(ctx, netutil.LimitListener(ln, conns), h, log, t)
	}}
	if op != nil {
		fns = append(fns, func(ctx context.Context) error {
			return pipeline.ServeListenerWith(ctx, netutil.LimitListener(op, operatorConns), h, log, t)
		})
	}
	return pipeline.RunGroup(ctx, fns...)
}

// openFileLimit is the process's open-file limit (Go raises the soft limit
// to the hard one at start), 0 if unknown.
func openFileLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur > 1<<30 {
		return 0
	}
	return int(r.Cur)
}
