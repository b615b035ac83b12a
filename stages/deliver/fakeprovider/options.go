package fakeprovider

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Options configure the fake provider. The zero value is a well-behaved
// provider on a random loopback port that accepts everything.
type Options struct {
	// Listen is the TCP address; default "127.0.0.1:0".
	Listen string
	// CertOut, if set, receives the self-signed certificate (PEM) so that a
	// client process can trust it with SSL_CERT_FILE=CertOut, and its key
	// CertOut + ".key"; a later start with the same CertOut serves them
	// again (certificate).
	CertOut string

	// TPS caps accepted requests per one-second window (0 = unlimited).
	// Requests above it get 429 (APNs TooManyRequests, FCM QUOTA_EXCEEDED)
	// with a Retry-After, and count as rejected_over_tps.
	TPS int
	// TPSWindow is how the windows are laid out; default WindowSliding.
	TPSWindow Window
	// Latency is added to every request that passes the outage and TPS
	// checks.
	Latency time.Duration
	// UnregisteredRate and BadTokenRate pick tokens deterministically: the
	// token's hash is mapped to [0,1); below UnregisteredRate it is
	// unregistered (APNs 410 / FCM UNREGISTERED), below
	// UnregisteredRate+BadTokenRate it is malformed (APNs 400 BadDeviceToken /
	// FCM INVALID_ARGUMENT). The same token always gets the same fate.
	UnregisteredRate, BadTokenRate float64
	// ErrorRate answers 500 or 503 at random to that share of requests.
	ErrorRate float64
	// Outage answers 503 to every provider request for this long after
	// Start, before any other check (so no 429 then, whatever the rate).
	Outage time.Duration
	// MaxConcurrentStreams per HTTP/2 connection; default 1000 (what APNs
	// advertises).
	MaxConcurrentStreams uint32
	// KeepRequests keeps every accepted request's headers and body for
	// full receipts (GET /_receipts?full=1, FullReceipts): about half a
	// kilobyte a request, so it is off unless a test wants to look.
	KeepRequests bool
	// APNsKeys, if set, lists the "TEAMID/KEYID" pairs whose provider
	// tokens are accepted: a JWT of another team (iss) or key (kid) gets 403
	// InvalidProviderToken, as from APNs for a key it does not know. (The
	// signature is still not checked: the fake has no team keys.)
	APNsKeys []string
	// RequireAuth makes FCM requests without "Authorization: Bearer" fail
	// with 401. APNs always requires a bearer token or a client certificate.
	RequireAuth bool

	// ForceStatus, if set, is asked for every request that passed the
	// infrastructure checks (outage, TPS, error rate); a non-zero status is
	// answered as is. reason is the APNs reason, or the FCM error code
	// (FcmError errorCode; "" sends none). Tests use it for answers no rate
	// produces, such as APNs 403 or FCM SENDER_ID_MISMATCH.
	ForceStatus func(token string) (status int, reason string)

	// Log receives server errors (TLS handshakes and the like); nil discards.
	Log io.Writer
}

func (o Options) withDefaults() Options {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.TPSWindow == "" {
		o.TPSWindow = WindowSliding
	}
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = 1000
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o
}

func (o Options) validate() error {
	var errs []error
	rate := func(name string, v float64) {
		if v < 0 || v > 1 {
			errs = append(errs, fmt.Errorf("%s must be within [0,1], got %v", name, v))
		}
	}
	rate("unregistered rate", o.UnregisteredRate)
	rate("bad token rate", o.BadTokenRate)
	rate("error rate", o.ErrorRate)
	if o.UnregisteredRate+o.BadTokenRate > 1 {
		errs = append(errs, fmt.Errorf("unregistered rate + bad token rate must not exceed 1"))
	}
	if o.TPS < 0 {
		errs = append(errs, fmt.Errorf("tps must not be negative, got %d", o.TPS))
	}
	if !o.TPSWindow.valid() {
		errs = append(errs, fmt.Errorf("tps window must be %q or %q, got %q", WindowSliding, WindowFixed, o.TPSWindow))
	}
	if o.Latency < 0 || o.Outage < 0 {
		errs = append(errs, fmt.Errorf("latency and outage must not be negative"))
	}
	return errors.Join(errs...)
}
