package apns

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/sideshow/apns2"
)

// Config selects the APNs endpoint and credentials. Exactly one of KeyFile
// (token auth, preferred: one key serves every app of the team and both
// environments) or CertFile (certificate auth) is used.
type Config struct {
	// KeyFile is the .p8 signing key; KeyID and TeamID identify it.
	KeyFile, KeyID, TeamID string
	// CertFile is a .p12 (or .pfx) or a .pem holding certificate and key;
	// CertPassword unlocks it.
	CertFile, CertPassword string

	// Topic is the app's bundle id (apns-topic).
	Topic string
	// Host is the APNs base URL; default apns2.HostProduction. A fake
	// provider is e.g. "https://127.0.0.1:8443".
	Host string
	// Conns is how many HTTP/2 connections sends are spread over; default 2.
	// One connection serialises all frame writes; a few spread that work over
	// cores (apns2's README suggests one client per core beyond ~4k/s).
	Conns int
	// RootCAs, if set, replaces the system roots (tests, dev). Leave it nil
	// in production: the system pool also honours SSL_CERT_FILE.
	RootCAs *x509.CertPool
	// Timeout bounds one request (connect, send, answer); default 30s. The
	// caller's context may end it sooner.
	Timeout time.Duration
}

const maxConns = 64

func (c Config) withDefaults() Config {
	if c.Host == "" {
		c.Host = apns2.HostProduction
	}
	c.Host = strings.TrimRight(c.Host, "/")
	if c.Conns == 0 {
		c.Conns = 2
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	switch {
	case c.KeyFile == "" && c.CertFile == "":
		errs = append(errs, errors.New("a .p8 key file (token auth) or a certificate file is required"))
	case c.KeyFile != "" && c.CertFile != "":
		errs = append(errs, errors.New("give either a .p8 key file or a certificate file, not both"))
	case c.KeyFile != "" && (c.KeyID == "" || c.TeamID == ""):
		errs = append(errs, errors.New("token auth needs the key id and the team id"))
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("the topic (the app's bundle id) is required"))
	}
	if u, err := url.Parse(c.Host); err != nil || u.Scheme != "https" || u.Host == "" {
		errs = append(errs, fmt.Errorf("host %q must be an https:// URL", c.Host))
	}
	if c.Conns < 1 || c.Conns > maxConns {
		errs = append(errs, fmt.Errorf("conns must be within 1..%d, got %d", maxConns, c.Conns))
	}
	return errors.Join(errs...)
}
