package console

import (
	"net/http"
	"strings"
)

// OverTLS reports whether the browser reached the console over HTTPS: TLS
// here, or at the TLS-terminating proxy in front that says so
// (X-Forwarded-Proto, Forwarded's proto). The API itself serves plain HTTP,
// so with r.TLS alone the cookie was never Secure in production. Believing
// the header is safe this way round: it can only add Secure, the "__Host-"
// prefix (session.go) and Strict-Transport-Security, and a client that
// forges it over plain HTTP gets a cookie its own browser refuses and a
// header it ignores.
func OverTLS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	for _, v := range r.Header.Values("X-Forwarded-Proto") {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "https") {
				return true
			}
		}
	}
	for _, v := range r.Header.Values("Forwarded") {
		for _, elem := range strings.Split(v, ",") {
			for _, pair := range strings.Split(elem, ";") {
				k, val, _ := strings.Cut(strings.TrimSpace(pair), "=")
				if strings.EqualFold(k, "proto") && strings.EqualFold(strings.Trim(val, `"`), "https") {
					return true
				}
			}
		}
	}
	return false
}
