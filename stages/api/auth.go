package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
)

// Auth holds the credentials: the operator's token (every endpoint) and the
// per-app keys shipped inside apps (only their own app's /v1/devices*).
type Auth struct {
	AdminToken string
	AppKeys    map[string]string // app → key
	// Insecure disables authentication (pushpipe api --insecure-no-auth).
	Insecure bool
}

// ParseAppKeys parses PUSHPIPE_APP_KEYS: "app=key[,app=key...]".
func ParseAppKeys(s string) (map[string]string, error) {
	keys := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		app, key, ok := strings.Cut(kv, "=")
		if !ok || app == "" || key == "" {
			return nil, fmt.Errorf("PUSHPIPE_APP_KEYS: want app=key[,app=key...], got an item without '=' or with an empty side")
		}
		keys[app] = key
	}
	return keys, nil
}

// Validate refuses a configuration that would leave the API open by mistake.
func (a Auth) Validate() error {
	if a.Insecure {
		return nil
	}
	if a.AdminToken == "" && len(a.AppKeys) == 0 {
		return fmt.Errorf("no credentials configured: set PUSHPIPE_ADMIN_TOKEN and/or PUSHPIPE_APP_KEYS, or pass --insecure-no-auth for a closed test network")
	}
	return nil
}

type scope int

const (
	scopeAdmin scope = iota // operator token only
	scopeApp                // operator token, or the key of the app concerned
)

type principalKey struct{}

// principal is who made a request: the operator (app == "") or an app key.
type principal struct {
	admin bool
	app   string
}

// equal compares secrets in constant time (hashing first so the length of the
// secret does not leak either).
func equal(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

func (a Auth) identify(r *http.Request) (principal, bool) {
	if a.Insecure {
		return principal{admin: true}, true
	}
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return principal{}, false
	}
	if a.AdminToken != "" && equal(tok, a.AdminToken) {
		return principal{admin: true}, true
	}
	// Check every key, without stopping early, so timing does not say which
	// app a guess came close to.
	found := ""
	for app, key := range a.AppKeys {
		if equal(tok, key) {
			found = app
		}
	}
	if found != "" {
		return principal{app: found}, true
	}
	return principal{}, false
}

func (s *Server) authenticate(sc scope, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.cfg.Auth.identify(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pushpipe"`)
			writeError(w, http.StatusUnauthorized, "missing or unknown bearer token: send Authorization: Bearer <admin token or app key>")
			return
		}
		if sc == scopeAdmin && !p.admin {
			writeError(w, http.StatusForbidden, "this endpoint needs the operator token; app keys may only register their own app's devices")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}

// allowedApp reports whether the request's principal may write devices of app.
func allowedApp(r *http.Request, app string) bool {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p.admin || p.app == app
}
