package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// Auth holds the credentials: the operator's token (every endpoint) and the
// per-app keys shipped inside apps (only their own app's /v1/devices*).
//
// Auth deliberately has no String method that shows the secrets: printing it
// (%v, %+v) prints the redacted form below, so a stray log line or panic
// message cannot leak a token.
type Auth struct {
	AdminToken string
	AppKeys    map[string]string // app → key
	// FileKeys are the app keys of the --apps file: app → its keys.
	FileKeys map[string][]string
	// Insecure disables authentication (pushpipe api --insecure-no-auth).
	Insecure bool
}

// ParseAppKeys parses PUSHPIPE_APP_KEYS: "app=key[,app=key...]". Errors never
// quote the value: it is a list of secrets.
func ParseAppKeys(s string) (map[string]string, error) {
	keys := map[string]string{}
	for i, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		app, key, ok := strings.Cut(kv, "=")
		app, key = strings.TrimSpace(app), strings.TrimSpace(key)
		if !ok || app == "" || key == "" {
			return nil, fmt.Errorf("PUSHPIPE_APP_KEYS: item %d: want app=key[,app=key...], got an item without '=' or with an empty side", i+1)
		}
		if _, dup := keys[app]; dup {
			return nil, fmt.Errorf("PUSHPIPE_APP_KEYS: app %q is listed twice; give each app one key", app)
		}
		keys[app] = key
	}
	return keys, nil
}

// MinSecret is the shortest operator token or app key accepted: a short
// secret can be guessed by trying, and nothing slows a guesser down but its
// length. (pushpipe dev generates 48 hex characters; `openssl rand -hex 24`
// does the same.)
const MinSecret = 16

// Validate refuses a configuration that would leave the API open by mistake,
// that would make one secret mean two things, or whose secrets are short
// enough to guess.
func (a Auth) Validate() error {
	if a.Insecure {
		return nil
	}
	if a.AdminToken == "" && len(a.AppKeys) == 0 && len(a.FileKeys) == 0 {
		if a.FileKeys != nil {
			// An apps file is read (at start, or a SIGHUP that removed
			// the last of its keys): its keys are a fix too.
			return errors.New("no credentials configured: set PUSHPIPE_ADMIN_TOKEN and/or PUSHPIPE_APP_KEYS, or give apps of the --apps file keys (or keys_env), or pass --insecure-no-auth for a closed test network")
		}
		return errors.New("no credentials configured: set PUSHPIPE_ADMIN_TOKEN and/or PUSHPIPE_APP_KEYS, or pass --insecure-no-auth for a closed test network")
	}
	if a.AdminToken != "" && len(a.AdminToken) < MinSecret {
		return fmt.Errorf("PUSHPIPE_ADMIN_TOKEN: %d characters is too short to resist guessing; use at least %d (e.g. openssl rand -hex 24)", len(a.AdminToken), MinSecret)
	}
	owner := map[string]appKey{} // key → where it was first given, to find a key shared by two apps
	for _, k := range a.keys() {
		app, key := k.app, k.key
		if key == "" {
			return fmt.Errorf("%s: app %q has an empty key", k.from, app)
		}
		if len(key) < MinSecret {
			return fmt.Errorf("%s: the key of app %q is %d characters, too short to resist guessing; use at least %d (e.g. openssl rand -hex 24)", k.from, app, len(key), MinSecret)
		}
		if a.AdminToken != "" && hashSecret(key).equal(hashSecret(a.AdminToken)) {
			// The key shipped inside an app would be the operator token.
			return fmt.Errorf("%s: the key of app %q is the admin token; give the operator a token of its own", k.from, app)
		}
		if other, dup := owner[key]; dup && other.app != app {
			return fmt.Errorf("app %q (%s) and app %q (%s) share a key; each app needs its own", other.app, other.from, app, k.from)
		}
		// The same key given twice for one app (in PUSHPIPE_APP_KEYS and the
		// apps file while moving from one to the other) means one thing.
		if _, dup := owner[key]; !dup {
			owner[key] = k
		}
	}
	return nil
}

// apps lists the apps with a key, sorted (stable error messages).
func (a Auth) apps() []string {
	apps := make([]string, 0, len(a.AppKeys)+len(a.FileKeys))
	for app := range a.AppKeys {
		apps = append(apps, app)
	}
	for app := range a.FileKeys {
		if _, dup := a.AppKeys[app]; !dup {
			apps = append(apps, app)
		}
	}
	sort.Strings(apps)
	return apps
}

// appKey is one app key, in the clear, and where it was given (for
// errors: a key of the apps file named PUSHPIPE_APP_KEYS sent the operator
// to a variable that may not even be set).
type appKey struct{ app, key, from string }

// Where an app key was given.
const (
	fromEnv  = "PUSHPIPE_APP_KEYS"
	fromFile = "the apps file's keys or keys_env"
)

// keys lists every app key, of PUSHPIPE_APP_KEYS and of the apps file, by
// app.
func (a Auth) keys() []appKey {
	var out []appKey
	for _, app := range a.apps() {
		if key, ok := a.AppKeys[app]; ok {
			out = append(out, appKey{app, key, fromEnv})
		}
		for _, key := range a.FileKeys[app] {
			out = append(out, appKey{app, key, fromFile})
		}
	}
	return out
}

// String describes the configuration without any secret.
func (a Auth) String() string {
	if a.Insecure {
		return "auth{insecure: no authentication}"
	}
	admin := "unset"
	if a.AdminToken != "" {
		admin = "set"
	}
	return fmt.Sprintf("auth{admin token: %s, app keys for: %s}", admin, strings.Join(a.apps(), ","))
}

// GoString keeps %#v from printing the secrets too.
func (a Auth) GoString() string { return a.String() }

type scope int

const (
	scopeAdmin scope = iota // operator token only
	scopeApp                // operator token, or the key of the app concerned
	scopeAny                // any valid token: the API's reference, which every client may read
	// scopeConsole: no bearer token; the console signs in with the operator
	// token and checks its own session cookie on every request.
	scopeConsole
)

type principalKey struct{}

// principal is who made a request: the operator (app == "") or an app key.
type principal struct {
	admin bool
	app   string
}

// secret is a token or key kept as its SHA-256: a presented token is hashed
// once and compared in constant time with each (hashing first so the length
// of the secret does not leak either).
type secret [sha256.Size]byte

func hashSecret(s string) secret { return sha256.Sum256([]byte(s)) }

func (a secret) equal(b secret) bool { return subtle.ConstantTimeCompare(a[:], b[:]) == 1 }

// verifier is Auth with its secrets hashed once, at startup.
type verifier struct {
	insecure bool
	admin    *secret // nil: no operator token
	keys     []appSecret
}

type appSecret struct {
	app string
	key secret
}

func (a Auth) verifier() verifier {
	v := verifier{insecure: a.Insecure}
	if a.AdminToken != "" {
		h := hashSecret(a.AdminToken)
		v.admin = &h
	}
	for _, k := range a.keys() {
		v.keys = append(v.keys, appSecret{k.app, hashSecret(k.key)})
	}
	return v
}

// bearer returns the token of an "Authorization: Bearer <token>" header. The
// scheme is case-insensitive (RFC 9110 §11.1). Two Authorization headers are
// refused, not resolved: a proxy in front may read the other one, and then
// the two disagree on who is calling.
func bearer(r *http.Request) (string, bool) {
	h := r.Header["Authorization"]
	if len(h) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(h[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func (v verifier) identify(r *http.Request) (principal, bool) {
	if v.insecure {
		return principal{admin: true}, true
	}
	tok, ok := bearer(r)
	if !ok {
		return principal{}, false
	}
	h := hashSecret(tok)
	if v.admin != nil && v.admin.equal(h) {
		return principal{admin: true}, true
	}
	// Check every key, without stopping early, so timing does not say which
	// app a guess came close to.
	found := ""
	for _, k := range v.keys {
		if k.key.equal(h) {
			found = k.app
		}
	}
	if found != "" {
		return principal{app: found}, true
	}
	return principal{}, false
}

// operator reports whether tok is the operator token: the only credential
// that signs in to the console (app keys ship inside apps).
func (v verifier) operator(tok string) bool {
	if v.insecure {
		return true
	}
	return v.admin != nil && v.admin.equal(hashSecret(tok))
}

// consoleTag names the operator token for the console's sessions
// (console.Config.OperatorTag): an HMAC keyed by the token, so what Redis
// keeps with a session says nothing of the token, yet changes with it.
// Without a token (insecure) it is empty.
func (a Auth) consoleTag() string {
	if a.Insecure || a.AdminToken == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte(a.AdminToken))
	m.Write([]byte("pushpipe console session"))
	return hex.EncodeToString(m.Sum(nil))
}

// unauthorized answers 401 with the Bearer challenge.
func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="pushpipe"`)
	// The same text for every path (TestAuthenticationBeforeRouting), so
	// the console's address is in all of them: make dev prints the API's
	// URL, and a browser opened on it got this JSON and nothing to follow.
	writeError(w, http.StatusUnauthorized, "missing, repeated or unknown bearer token: send one header Authorization: Bearer <admin token or app key>"+
		" (in a browser: the console, /ui/, signs in with the admin token)")
}

// principalOf is who made r (zero for a request that was not
// authenticated).
func principalOf(r *http.Request) principal {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p
}

// allowedApp reports whether the request's principal may write devices of app.
func allowedApp(r *http.Request, app string) bool {
	p := principalOf(r)
	return p.admin || p.app != "" && p.app == app
}
