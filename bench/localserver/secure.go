package localserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Security modes of a test Redis (RedisOptions.Security).
const (
	// SecurityAuth: requirepass for the default user, and an ACL user
	// (ClientAuth.Username) with its own password that clients use.
	SecurityAuth = "auth"
	// SecurityTLS: TLS only (no plain port), a CA of its own, and client
	// certificates required (tls-auth-clients yes).
	SecurityTLS = "tls"
)

// TestRedisSecurity is the security mode the end-to-end suites run Redis
// in: PUSHPIPE_TEST_REDIS=auth|tls, or "" (none). Anything else is an error,
// so a typo never silently tests the plain setup.
func TestRedisSecurity() (string, error) {
	switch m := os.Getenv("PUSHPIPE_TEST_REDIS"); m {
	case "", SecurityAuth, SecurityTLS:
		return m, nil
	default:
		return "", fmt.Errorf("PUSHPIPE_TEST_REDIS=%q: want auth, tls or nothing", m)
	}
}

// ClientAuth is what a client needs to reach a secured test Redis: the
// pushpipe settings of the same names (PUSHPIPE_REDIS_USERNAME, ...).
type ClientAuth struct {
	Username, Password string
	CAFile             string // TLS: the CA of the server's certificate
	CertFile, KeyFile  string // TLS: the client certificate
}

// Env is the environment a pushpipe process reaches r with.
func (r *Redis) Env() []string {
	env := []string{"PUSHPIPE_REDIS_ADDR=" + r.Addr}
	a := r.Client
	for _, kv := range [][2]string{
		{"PUSHPIPE_REDIS_USERNAME", a.Username}, {"PUSHPIPE_REDIS_PASSWORD", a.Password},
		{"PUSHPIPE_REDIS_TLS_CA_FILE", a.CAFile},
		{"PUSHPIPE_REDIS_TLS_CERT_FILE", a.CertFile}, {"PUSHPIPE_REDIS_TLS_KEY_FILE", a.KeyFile},
	} {
		if kv[1] != "" {
			env = append(env, kv[0]+"="+kv[1])
		}
	}
	return env
}

// secureArgs are redis-server's arguments for the security mode, and fill
// in r.Client. Certificates and passwords are made once per server (its
// directory), so Restart keeps them.
func (r *Redis) secureArgs(mode string, port int) ([]string, error) {
	switch mode {
	case "":
		return []string{"--port", strconv.Itoa(port)}, nil
	case SecurityAuth:
		admin, user := randomSecret(), randomSecret()
		r.Client = ClientAuth{Username: "pushpipe", Password: user}
		r.admin = ClientAuth{Password: admin}
		return []string{"--port", strconv.Itoa(port), "--requirepass", admin,
			"--user", "pushpipe", "on", ">" + user, "~*", "&*", "+@all"}, nil
	case SecurityTLS:
		files, err := writeTestPKI(r.Dir)
		if err != nil {
			return nil, err
		}
		r.Client = ClientAuth{CAFile: files.ca, CertFile: files.clientCert, KeyFile: files.clientKey}
		r.admin = r.Client
		return []string{"--port", "0", "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", files.serverCert, "--tls-key-file", files.serverKey,
			"--tls-ca-cert-file", files.ca, "--tls-auth-clients", "yes"}, nil
	}
	return nil, fmt.Errorf("redis security %q: want %q, %q or none", mode, SecurityAuth, SecurityTLS)
}

// dial is how the readiness checks reach r (redisDo).
func (r *Redis) dial() redisDial {
	d := redisDial{password: r.admin.Password}
	if r.admin.CAFile != "" {
		cfg, err := clientTLS(r.admin)
		if err != nil {
			return redisDial{err: err}
		}
		d.tls = cfg
	}
	return d
}

// clientTLS is the TLS client configuration of a.
func clientTLS(a ClientAuth) (*tls.Config, error) {
	ca, err := os.ReadFile(a.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(a.CertFile, a.KeyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}, nil
}

func randomSecret() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

type pkiFiles struct{ ca, serverCert, serverKey, clientCert, clientKey string }

// writeTestPKI makes a CA, a server certificate for 127.0.0.1 and localhost
// and a client certificate, all signed by the CA, as PEM files in dir
// (kept if they are there already).
func writeTestPKI(dir string) (pkiFiles, error) {
	f := pkiFiles{
		ca:         filepath.Join(dir, "ca.pem"),
		serverCert: filepath.Join(dir, "server.pem"), serverKey: filepath.Join(dir, "server-key.pem"),
		clientCert: filepath.Join(dir, "client.pem"), clientKey: filepath.Join(dir, "client-key.pem"),
	}
	if _, err := os.Stat(f.clientKey); err == nil {
		return f, nil
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pushpipe test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return f, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return f, err
	}
	if err := writePEM(f.ca, "CERTIFICATE", caDER); err != nil {
		return f, err
	}
	for i, leaf := range []struct {
		cert, key string
		usage     x509.ExtKeyUsage
	}{{f.serverCert, f.serverKey, x509.ExtKeyUsageServerAuth}, {f.clientCert, f.clientKey, x509.ExtKeyUsageClientAuth}} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return f, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: "pushpipe test"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{leaf.usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return f, err
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return f, err
		}
		if err := writePEM(leaf.cert, "CERTIFICATE", der); err != nil {
			return f, err
		}
		if err := writePEM(leaf.key, "EC PRIVATE KEY", keyDER); err != nil {
			return f, err
		}
	}
	return f, nil
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
