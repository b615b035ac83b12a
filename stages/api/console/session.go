package console

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// The session cookie. Its value is a random 256-bit id; Redis keeps only
// the id's SHA-256 (someone who can read Redis cannot sign in with what they
// read), with the operator token's tag and the session's CSRF token as value
// and the session's lifetime as expiry, so every API replica knows every
// session and sign-out ends it everywhere.
//
// Over TLS it is tlsCookieName at Path=/: a browser keeps a "__Host-" cookie
// only when it is Secure, for the whole origin and without Domain, so
// neither a sibling subdomain nor a plain-HTTP answer forged on the network
// can set one in its place (to sign the operator in to a session of the
// attacker's). Plain HTTP (make dev's http://127.0.0.1) cannot carry the
// prefix and keeps the plain name under /ui/. Each transport reads only its
// own name: a TLS request that took the plain name would lose the prefix's
// protection.
const (
	cookieName    = "pushpipe_console"
	tlsCookieName = "__Host-pushpipe_console"
)

// cookieFor is the session cookie's name and path for a request's transport.
func cookieFor(r *http.Request) (name, path string) {
	if OverTLS(r) {
		return tlsCookieName, "/"
	}
	return cookieName, "/ui/"
}

// sessionCookie is the request's session cookie, if it sent one.
func sessionCookie(r *http.Request) (*http.Cookie, error) {
	name, _ := cookieFor(r)
	return r.Cookie(name)
}

// setSessionCookie sets (or, with an empty id, clears) the session cookie.
func (c *Console) setSessionCookie(w http.ResponseWriter, r *http.Request, id string) {
	name, path := cookieFor(r)
	maxAge := int(c.cfg.SessionTTL.Seconds())
	if id == "" {
		maxAge = -1
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: id, Path: path, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: OverTLS(r)})
}

// csrfField is the form field, csrfHeader the header (htmx requests) that
// carry the session's CSRF token on every POST.
const (
	csrfField  = "csrf"
	csrfHeader = "X-CSRF-Token"
)

// session is a signed-in browser.
type session struct {
	csrf string
}

// sessionHandler serves a request of a signed-in browser.
type sessionHandler func(w http.ResponseWriter, r *http.Request, s session)

func randomHex() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *Console) sessionKey(id string) string {
	h := sha256.Sum256([]byte(id))
	return c.cfg.Keys.ConsoleSession(hex.EncodeToString(h[:]))
}

// lookup finds the request's session; ok is false without a live one.
func (c *Console) lookup(ctx context.Context, r *http.Request) (session, bool, error) {
	ck, err := sessionCookie(r)
	if err != nil || len(ck.Value) != 64 {
		return session{}, false, nil
	}
	v, err := c.cfg.Redis.Do(ctx, c.cfg.Redis.B().Get().Key(c.sessionKey(ck.Value)).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return session{}, false, nil
	}
	if err != nil {
		return session{}, false, err
	}
	// Signed in under another operator token (or before sessions kept
	// theirs): over, as if signed out.
	tag, csrf, ok := strings.Cut(v, " ")
	if !ok || tag != c.tag() || csrf == "" {
		return session{}, false, nil
	}
	return session{csrf: csrf}, true, nil
}

// tag is the operator token's tag as a session keeps it ("-" for none, so
// that the value always has its two parts).
func (c *Console) tag() string { return cmp.Or(c.cfg.OperatorTag, "-") }

// signedIn sends a browser without a session to the sign-in page and
// refuses a POST without its session's CSRF token.
func (c *Console) signedIn(h sessionHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		s, ok, err := c.lookup(ctx, r)
		switch {
		case err != nil && gone(r):
			// Canceled by the browser, not failed: no warning (failed).
			c.cfg.Log.Debug().Err(err).Str("path", r.URL.Path).Msg("console: request canceled by the browser")
			return
		case err != nil:
			c.cfg.Log.Warn().Err(err).Msg("console: session lookup failed")
			c.fail(w, r, http.StatusServiceUnavailable, page{Title: "Unavailable",
				Error: "Redis did not answer; reload in a moment."})
			return
		case !ok && r.Header.Get("HX-Request") == "true":
			// A live fragment whose session ended: htmx takes the whole
			// page to the sign-in form (not just the fragment). 204, not
			// 401: htmx reads the header first whatever the status, and
			// the browser would log a 401 as an error every time. The
			// page it was on is where the sign-in leads back.
			w.Header().Set("HX-Redirect", signInURL(r.Header.Get("HX-Current-URL"), signInEnded))
			w.WriteHeader(http.StatusNoContent)
			return
		case !ok && r.Method == http.MethodGet:
			// A cookie the server no longer knows is a session that
			// ended (signed out elsewhere, or past its time); no
			// cookie is a browser that never signed in.
			why := ""
			if _, err := sessionCookie(r); err == nil {
				why = signInEnded
			}
			http.Redirect(w, r, signInURL(r.URL.RequestURI(), why), http.StatusSeeOther)
			return
		case !ok:
			c.render(w, r, http.StatusUnauthorized, "error", page{Title: "Signed out", Error: "Your session ended; sign in again."})
			return
		}
		if r.Method == http.MethodPost {
			// The cap goes on before anything reads the form: reading
			// the CSRF field parses the whole body, and Go's own cap is
			// 10 MB (a handler's later cap came too late).
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if err := r.ParseForm(); err != nil {
				c.render(w, r, http.StatusRequestEntityTooLarge, "error", page{Title: "Refused", Session: s,
					Error: fmt.Sprintf("This form could not be read (%v); the console's forms take at most %d KiB.", err, maxForm>>10)})
				return
			}
		}
		if r.Method == http.MethodPost && !validCSRF(r, s) {
			c.render(w, r, http.StatusForbidden, "error", page{Title: "Refused", Session: s,
				Error: "This form is missing its CSRF token or it is stale: reload the page and try again."})
			return
		}
		h(w, r, s)
	})
}

// maxForm caps every console form: the new-campaign form at its largest
// (title and body at 4096 bytes each, data) fits well under it.
const maxForm = 64 << 10

func validCSRF(r *http.Request, s session) bool {
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue(csrfField)
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// home is where a sign-in leads when it has no page to go back to.
const home = "/ui/campaigns"

// Why the sign-in form is shown (its ?why=), so it can say so: the page an
// operator was watching jumped to a bare sign-in form with no word of why.
const (
	signInEnded     = "ended"      // the session ended under an open page
	signInSignedOut = "signed-out" // the operator signed out
)

// signInURL is the sign-in form, leading back to the console page at
// target (a URL or a path) once signed in; the form alone for anything
// else. why is one of the signIn* reasons, or "".
func signInURL(target, why string) string {
	q := url.Values{}
	if next := safeNext(target); next != "" && next != home {
		q.Set("next", next)
	}
	if why != "" {
		q.Set("why", why)
	}
	if len(q) == 0 {
		return "/ui/signin"
	}
	return "/ui/signin?" + q.Encode()
}

// signInNotice is the sentence for the sign-in form's ?why=: fixed texts
// only, so a crafted link cannot make the console say anything else.
func (c *Console) signInNotice(why string) string {
	switch why {
	case signInEnded:
		return "Your session ended: a sign-in lasts " + hours(c.cfg.SessionTTL) +
			", and signing out in another tab ends it too. Sign in again to go back to the page you were on."
	case signInSignedOut:
		return "You are signed out."
	}
	return ""
}

// hours writes a session's length as a person says it: "8 hours", not "8h0m0s".
func hours(d time.Duration) string {
	switch {
	case d == time.Hour:
		return "1 hour"
	case d >= time.Hour && d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + " hours"
	}
	return d.String()
}

// safeNext is target's path and query when it is a console page of this
// origin to go back to after signing in, else "": a sign-in must never lead
// to another site (an open redirect), whatever a link put in ?next=.
func safeNext(target string) string {
	u, err := url.Parse(target)
	if err != nil || target == "" || strings.ContainsAny(target, "\\\x00") {
		return ""
	}
	// A full URL only from htmx's HX-Current-URL: its path is kept, and
	// a path alone must be one (no scheme, no host, not "//host").
	if u.Scheme != "" || u.Host != "" {
		if u.Scheme != "http" && u.Scheme != "https" {
			return ""
		}
		u = &url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}
	} else if u.Opaque != "" || strings.HasPrefix(target, "//") {
		return ""
	}
	if !strings.HasPrefix(u.Path, "/ui/") || strings.HasPrefix(u.Path, "/ui/signin") || strings.Contains(u.Path, "//") {
		return ""
	}
	return u.RequestURI()
}

func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "signin", page{Title: "Sign in", Data: safeNext(r.URL.Query().Get("next")),
		Notice: c.signInNotice(r.URL.Query().Get("why"))})
}

// signIn exchanges the operator token for a session cookie. An app key, a
// wrong token and an empty one get the same answer.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	// Spaces around it are a copy from a terminal (make dev prints it
	// after spaces), never part of a token: they were refused as "not the
	// operator token", with the right token in the field.
	tok := strings.TrimSpace(r.PostFormValue("token"))
	next := safeNext(r.PostFormValue("next"))
	if c.cfg.Throttle != nil && tok != "" {
		// Refused before the token is compared: an answer to it would
		// tell a guesser, throttled or not, whether it was right.
		if wait := c.cfg.Throttle.Blocked(r); wait > 0 {
			secs := max(1, int(math.Ceil(wait.Seconds())))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			c.render(w, r, http.StatusTooManyRequests, "signin", page{Title: "Sign in", Data: next,
				Error: fmt.Sprintf("Too many wrong tokens from your address: try again in %d s, with PUSHPIPE_ADMIN_TOKEN.", secs)})
			return
		}
	}
	if tok == "" || !c.cfg.Operator(tok) {
		if c.cfg.Throttle != nil && tok != "" {
			c.cfg.Throttle.Failed(r)
		}
		c.render(w, r, http.StatusUnauthorized, "signin", page{Title: "Sign in", Data: next,
			Error: "That is not the operator token. App keys cannot sign in; use PUSHPIPE_ADMIN_TOKEN."})
		return
	}
	id, csrf := randomHex(), randomHex()
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	cmds := rueidis.Commands{c.cfg.Redis.B().Set().Key(c.sessionKey(id)).Value(c.tag() + " " + csrf).
		Px(c.cfg.SessionTTL).Build()}
	if old, err := sessionCookie(r); err == nil {
		// The session this browser held ends: a sign-in starts afresh,
		// and a copy of the old cookie taken meanwhile opens nothing.
		cmds = append(cmds, c.cfg.Redis.B().Del().Key(c.sessionKey(old.Value)).Build())
	}
	var err error
	for _, res := range c.cfg.Redis.DoMulti(ctx, cmds...) {
		err = cmp.Or(err, res.Error())
	}
	if err != nil {
		c.cfg.Log.Warn().Err(err).Msg("console: session not stored")
		c.render(w, r, http.StatusServiceUnavailable, "signin", page{Title: "Sign in", Data: next, Error: "Redis did not answer; try again in a moment."})
		return
	}
	c.setSessionCookie(w, r, id)
	// Back to the page whose session ended (a campaign being watched),
	// not to the list.
	http.Redirect(w, r, cmp.Or(next, home), http.StatusSeeOther)
}

// signOut ends the session everywhere (its Redis key) and clears the cookie.
// A session Redis did not delete is not signed out: the page says so and
// the cookie stays, so that signing out again can end it. (It used to clear
// the cookie and say "You are signed out" while the session stayed good for
// the rest of its hours to whoever held a copy of the cookie.)
func (c *Console) signOut(w http.ResponseWriter, r *http.Request, s session) {
	if ck, err := sessionCookie(r); err == nil {
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		if err := c.cfg.Redis.Do(ctx, c.cfg.Redis.B().Del().Key(c.sessionKey(ck.Value)).Build()).Error(); err != nil {
			c.cfg.Log.Warn().Err(err).Msg("console: session not deleted")
			c.render(w, r, http.StatusServiceUnavailable, "error", page{Title: "Not signed out", Session: s,
				Error: "Not signed out: Redis did not end the session. Sign out again in a moment."})
			return
		}
	}
	c.setSessionCookie(w, r, "")
	http.Redirect(w, r, signInURL("", signInSignedOut), http.StatusSeeOther)
}
