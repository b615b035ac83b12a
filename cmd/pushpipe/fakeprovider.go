package main

import (
	"os"
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

// Run serves until SIGTERM.
func (c *FakeproviderCmd) Run(g *Globals) error {
	return fakeprovider.Run(g.Context(), fakeprovider.Options{
		Listen: c.Listen, CertOut: c.CertOut, TPS: c.TPS, TPSWindow: fakeprovider.Window(c.TPSWindow), Latency: c.Latency,
		UnregisteredRate: c.UnregisteredRate, BadTokenRate: c.BadTokenRate, ErrorRate: c.ErrorRate,
		Outage: c.Outage, KeepRequests: c.KeepRequests, APNsKeys: c.APNsKeys,
	}, os.Stderr)
}
