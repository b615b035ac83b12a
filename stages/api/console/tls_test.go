package console_test

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/api"
)

// TestSessionCookieUnderTLS: under TLS the session cookie is Secure too,
// and it opens the console only: the API's own routes still want the bearer
// token, and the console never takes one.
func TestSessionCookieUnderTLS(t *testing.T) {
	rdb, keys := sessionRedis(t)
	srv := httptest.NewTLSServer(api.New(api.Config{Redis: rdb, Keys: keys, Log: zerolog.Nop(),
		Auth: api.Auth{AdminToken: adminToken, AppKeys: map[string]string{app: appKey}}}))
	t.Cleanup(srv.Close)
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	do := func(method, path, body string, header map[string]string, cookies ...*http.Cookie) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(context.Background(), method, srv.URL+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// The bearer token does not open the console: it is a browser's.
	if r := do("GET", "/ui/campaigns", "", map[string]string{"Authorization": "Bearer " + adminToken}); r.StatusCode != http.StatusSeeOther {
		t.Errorf("console with a bearer token: %d, want 303 to the sign-in", r.StatusCode)
	}
	if r := do("GET", "/ui", "", nil); r.StatusCode/100 != 3 || r.Header.Get("Location") != "/ui/" {
		t.Errorf("/ui: %d to %q, want a redirect to /ui/", r.StatusCode, r.Header.Get("Location"))
	}
	r := do("POST", "/ui/signin", url.Values{"token": {adminToken}}.Encode(), nil)
	var session *http.Cookie
	for _, c := range r.Cookies() {
		session = c
	}
	if r.StatusCode != http.StatusSeeOther || session == nil {
		t.Fatalf("sign-in: %d, cookies %v", r.StatusCode, r.Cookies())
	}
	if !session.Secure || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.MaxAge <= 0 ||
		session.Name != "__Host-pushpipe_console" || session.Path != "/" || session.Domain != "" {
		t.Errorf("session cookie under TLS: %+v, want __Host-pushpipe_console, Secure, Path=/, no Domain", session)
	}
	if got := r.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("sign-in under TLS: Strict-Transport-Security %q", got)
	}
	// The plain name over TLS opens nothing: a cookie set by a sibling
	// subdomain or a forged plain-HTTP answer must not sign the browser
	// in to a session of the attacker's choosing.
	plain := &http.Cookie{Name: "pushpipe_console", Value: session.Value}
	if r := do("GET", "/ui/pipeline", "", nil, plain); r.StatusCode != http.StatusSeeOther {
		t.Errorf("console over TLS with the plain-named cookie: %d, want 303 to the sign-in", r.StatusCode)
	}
	if r := do("GET", "/ui/pipeline", "", nil, session); r.StatusCode != http.StatusOK {
		t.Errorf("console with the session: %d", r.StatusCode)
	}
	// The API proper: the session cookie is not a credential there.
	if r := do("GET", "/v1/campaigns/x", "", nil, session); r.StatusCode != http.StatusUnauthorized ||
		r.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("API with the console's cookie: %d, Strict-Transport-Security %q; want 401 with it",
			r.StatusCode, r.Header.Get("Strict-Transport-Security"))
	}
}

// TestSessionCookieBehindTLSProxy: the API serves plain HTTP behind a
// TLS-terminating proxy, which says so in X-Forwarded-Proto or Forwarded:
// the session cookie, and the one that clears it at sign-out, are Secure
// and "__Host-" prefixed then too, with Strict-Transport-Security, and only
// then: plain HTTP (make dev) keeps a cookie it can set.
func TestSessionCookieBehindTLSProxy(t *testing.T) {
	rdb, keys := sessionRedis(t)
	srv := httptest.NewServer(api.New(api.Config{Redis: rdb, Keys: keys, Log: zerolog.Nop(),
		Auth: api.Auth{AdminToken: adminToken}}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name   string
		header map[string]string
		secure bool
	}{
		{"plain HTTP", nil, false},
		{"X-Forwarded-Proto", map[string]string{"X-Forwarded-Proto": "https"}, true},
		{"X-Forwarded-Proto of two proxies", map[string]string{"X-Forwarded-Proto": "https, http"}, true},
		{"X-Forwarded-Proto http", map[string]string{"X-Forwarded-Proto": "http"}, false},
		{"Forwarded", map[string]string{"Forwarded": `for=192.0.2.60;proto=https;by=203.0.113.43`}, true},
		{"Forwarded quoted", map[string]string{"Forwarded": `for="[2001:db8::1]";Proto="https"`}, true},
		{"Forwarded http", map[string]string{"Forwarded": "for=192.0.2.60;proto=http"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, path, hsts := "pushpipe_console", "/ui/", ""
			if tt.secure {
				name, path, hsts = "__Host-pushpipe_console", "/", "max-age=31536000"
			}
			session, h := consoleCookieH(t, srv.URL, "/ui/signin", url.Values{"token": {adminToken}}, tt.header)
			if session.Value == "" || session.Secure != tt.secure || !session.HttpOnly || session.Name != name ||
				session.Path != path || session.Domain != "" {
				t.Errorf("session cookie %+v: want %s, Path=%s, Secure=%v, HttpOnly, no Domain", session, name, path, tt.secure)
			}
			if got := h.Get("Strict-Transport-Security"); got != hsts {
				t.Errorf("Strict-Transport-Security %q, want %q", got, hsts)
			}
			csrf := csrfVia(t, srv.URL, session, tt.header)
			cleared, _ := consoleCookieH(t, srv.URL, "/ui/signout", url.Values{"csrf": {csrf}}, tt.header, session)
			if cleared.MaxAge >= 0 || cleared.Secure != tt.secure || cleared.Name != name || cleared.Path != path {
				t.Errorf("sign-out cookie %+v: want %s at %s cleared, Secure=%v", cleared, name, path, tt.secure)
			}
		})
	}
}

// consoleCookie POSTs form to the console and returns the session cookie
// its 303 sets.
func consoleCookie(t *testing.T, base, path string, form url.Values, header map[string]string, cookies ...*http.Cookie) *http.Cookie {
	t.Helper()
	c, _ := consoleCookieH(t, base, path, form, header, cookies...)
	return c
}

// consoleCookieH is consoleCookie with the answer's headers; the cookie of
// either name.
func consoleCookieH(t *testing.T, base, path string, form url.Values, header map[string]string, cookies ...*http.Cookie) (*http.Cookie, http.Header) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), "POST", base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "pushpipe_console" || c.Name == "__Host-pushpipe_console" {
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("POST %s: %d", path, resp.StatusCode)
			}
			return c, resp.Header
		}
	}
	t.Fatalf("POST %s: %d, no session cookie in %v", path, resp.StatusCode, resp.Cookies())
	return nil, nil
}

// csrfOf reads the session's CSRF token off the form of a console page.
func csrfOf(t *testing.T, base string, session *http.Cookie) string {
	t.Helper()
	return csrfVia(t, base, session, nil)
}

// csrfVia is csrfOf asked with header (a proxy's X-Forwarded-Proto).
func csrfVia(t *testing.T, base string, session *http.Cookie, header map[string]string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), "GET", base+"/ui/pipeline", nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	req.AddCookie(session)
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`).FindSubmatch(b)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("GET /ui/pipeline: %d, no CSRF field", resp.StatusCode)
	}
	return string(m[1])
}

// noRedirects shows a redirect rather than following it.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// sessionRedis is the bed's Redis under keys of its own, for the tests of
// sessions that need an API on Redis alone.
func sessionRedis(t *testing.T) (rueidis.Client, pipeline.Keys) {
	t.Helper()
	rdb, err := pipeline.NewRedis(env.Redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	return rdb, pipeline.NewKeys("t"+strconv.FormatUint(rand.Uint64(), 36), 4)
}
