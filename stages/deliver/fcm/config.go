package fcm

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// DefaultEndpoint is Google's FCM v1 API.
const DefaultEndpoint = "https://fcm.googleapis.com/v1"

// Config selects the FCM project, endpoint and credentials.
type Config struct {
	// CredentialsFile is a service-account JSON. Without it requests go
	// unauthenticated, which only a non-Google endpoint (the fakeprovider)
	// accepts.
	CredentialsFile string
	// Project is the Firebase project id; default: the credentials' project.
	Project string
	// Endpoint is the API base including the version, default
	// DefaultEndpoint; e.g. "https://127.0.0.1:8443/v1" for the fakeprovider.
	Endpoint string
	// RootCAs, if set, replaces the system roots (tests, dev). Leave it nil
	// in production: the system pool also honours SSL_CERT_FILE.
	RootCAs *x509.CertPool
	// Timeout bounds one request; default 30s. The caller's context may end
	// it sooner.
	Timeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpoint
	}
	c.Endpoint = strings.TrimRight(c.Endpoint, "/")
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	return c
}

func (c Config) validate() error {
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("endpoint %q must be an http(s):// URL", c.Endpoint)
	}
	if c.CredentialsFile == "" && isGoogle(u.Hostname()) {
		return errors.New("the Google FCM endpoint needs a service-account credentials file; " +
			"only a non-Google endpoint (such as the fakeprovider) may be used without one")
	}
	if c.CredentialsFile == "" && c.Project == "" {
		return errors.New("the project id is required without a credentials file")
	}
	return nil
}

func isGoogle(host string) bool {
	host = strings.ToLower(host)
	return host == "googleapis.com" || strings.HasSuffix(host, ".googleapis.com")
}
