package fakeprovider

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// certificate is the server's certificate and its PEM. With certOut, the
// one a previous run left there (and its key, certOut + ".key") is taken
// again while it is good for a day more, else a fresh one is written
// there: a client trusts the file once (Go reads SSL_CERT_FILE once a
// process), so a fake provider started again under the same --cert-out (by
// `pushpipe dev`'s supervisor) must keep the certificate its running
// clients trust, or every send fails "certificate signed by unknown
// authority".
func certificate(certOut string, now time.Time) (tls.Certificate, []byte, error) {
	if certOut != "" {
		if cert, certPEM, err := loadCertificate(certOut, now); err == nil {
			return cert, certPEM, nil
		}
	}
	cert, certPEM, keyPEM, err := selfSigned(now)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	if certOut != "" {
		// The key first: a certificate file always has its key beside it.
		if err := os.WriteFile(certOut+".key", keyPEM, 0o600); err != nil {
			return tls.Certificate{}, nil, fmt.Errorf("write key: %w", err)
		}
		if err := writeFileAtomic(certOut, certPEM); err != nil {
			return tls.Certificate{}, nil, fmt.Errorf("write certificate: %w", err)
		}
	}
	return cert, certPEM, nil
}

// loadCertificate reads the certificate at certOut and its key, if both are
// there, match, and are good for a day after now.
func loadCertificate(certOut string, now time.Time) (tls.Certificate, []byte, error) {
	certPEM, err := os.ReadFile(certOut)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	keyPEM, err := os.ReadFile(certOut + ".key")
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	if now.Add(24 * time.Hour).After(cert.Leaf.NotAfter) {
		return tls.Certificate{}, nil, fmt.Errorf("certificate %s expires %s", certOut, cert.Leaf.NotAfter)
	}
	return cert, certPEM, nil
}

// selfSigned makes a fresh ECDSA P-256 certificate for 127.0.0.1, ::1 and
// localhost, and returns it with its PEM and its key's. It is its own CA, so
// putting it in a client's root pool (or SSL_CERT_FILE) is all a client
// needs.
func selfSigned(now time.Time) (cert tls.Certificate, certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "pushpipe fakeprovider", Organization: []string{"pushpipe"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("parse certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("marshal key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, certPEM, keyPEM, nil
}

// writeFileAtomic writes via a temporary file and rename, so a client that
// polls for the file never reads half a certificate.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
