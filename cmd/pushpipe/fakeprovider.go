package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
)

// FakeproviderCmd serves a fake APNs + FCM endpoint for tests, the bench and
// local runs.
type FakeproviderCmd struct {
	Listen           string        `default:"127.0.0.1:8443" help:"TCP address to serve on."`
	CertOut          string        `name:"cert-out" placeholder:"FILE" help:"Write the self-signed certificate here (clients: SSL_CERT_FILE=FILE), its key to FILE.key; started again with the same FILE, it serves them again."`
	TPS              int           `name:"tps" help:"Requests per one-second window above which it answers 429 (0 = unlimited)."`
	TPSWindow        string        `name:"tps-window" enum:"sliding,fixed" default:"sliding" help:"How --tps is counted: sliding (no more than --tps in any one-second window, whatever its phase) or fixed (one-second windows of its own, starting at its first request)."`
	Latency          time.Duration `help:"Added to every request that passes the outage and --tps checks."`
	UnregisteredRate float64       `name:"unregistered-rate" placeholder:"0..1" help:"Share of tokens answered 410 Unregistered / UNREGISTERED (by hash of the token)."`
	BadTokenRate     float64       `name:"bad-token-rate" placeholder:"0..1" help:"Share of tokens answered 400 BadDeviceToken / INVALID_ARGUMENT (by hash of the token)."`
	ErrorRate        float64       `name:"error-rate" placeholder:"0..1" help:"Share of requests answered 500 or 503 at random."`
	Outage           time.Duration `help:"Answer 503 to everything for this long after start."`
	KeepRequests     bool          `name:"keep-requests" help:"Keep each accepted request's headers and body for GET /_receipts?full=1 (about half a kilobyte a request)."`
	APNsKeys         []string      `name:"apns-keys" placeholder:"TEAM/KEY,..." help:"Accept APNs provider tokens of these team id / key id pairs only (403 InvalidProviderToken for others)."`
}

// Validate refuses the values fakeprovider.Options would refuse, said of
// their flags and at parse time (a usage error, exit 2): --error-rate 2
// said "fakeprovider: error rate must be within [0,1]" and exited 1, as a
// failure to serve would. A --listen without a port and an --apns-keys pair
// without its slash are refused too: the one failed only at listen, the
// other matched no provider token and answered 403 to every send.
func (c *FakeproviderCmd) Validate() error {
	var errs []error
	for _, r := range []struct {
		flag string
		v    float64
	}{{"--unregistered-rate", c.UnregisteredRate}, {"--bad-token-rate", c.BadTokenRate}, {"--error-rate", c.ErrorRate}} {
		if r.v < 0 || r.v > 1 {
			errs = append(errs, fmt.Errorf("%s must be a share from 0 to 1, such as 0.05, got %g", r.flag, r.v))
		}
	}
	if c.UnregisteredRate >= 0 && c.BadTokenRate >= 0 && c.UnregisteredRate+c.BadTokenRate > 1 {
		errs = append(errs, fmt.Errorf("--unregistered-rate and --bad-token-rate are shares of the same tokens: together at most 1, got %g + %g",
			c.UnregisteredRate, c.BadTokenRate))
	}
	if c.TPS < 0 {
		errs = append(errs, fmt.Errorf("--tps must be 0 (no cap) or more requests per second, got %d", c.TPS))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--latency", c.Latency}, {"--outage", c.Outage}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must be 0 (none) or a positive duration such as 50ms, got %v", d.flag, d.v))
		}
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen must be host:port such as 127.0.0.1:8443, got %q", c.Listen))
	}
	for _, k := range c.APNsKeys {
		if team, key, ok := strings.Cut(k, "/"); !ok || team == "" || key == "" || strings.Contains(key, "/") {
			errs = append(errs, fmt.Errorf("--apns-keys: each must be TEAM/KEY (a team id and a key id), got %q", k))
		}
	}
	return errors.Join(errs...)
}

// Run serves until SIGTERM.
func (c *FakeproviderCmd) Run(g *Globals) error {
	return fakeprovider.Run(g.Context(), fakeprovider.Options{
		Listen: c.Listen, CertOut: c.CertOut, TPS: c.TPS, TPSWindow: fakeprovider.Window(c.TPSWindow), Latency: c.Latency,
		UnregisteredRate: c.UnregisteredRate, BadTokenRate: c.BadTokenRate, ErrorRate: c.ErrorRate,
		Outage: c.Outage, KeepRequests: c.KeepRequests, APNsKeys: c.APNsKeys,
	}, os.Stderr)
}
