package console_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/api"
)

// TestSessionCookieUnderTLS: under TLS the session cookie is Secure too,
// and it opens the console only: the API's own routes still want the bearer
// token, and the console never takes one.
func TestSessionCookieUnderTLS(t *testing.T) {
	rdb, err := pipeline.NewRedis(env.Redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	keys := pipeline.NewKeys("t"+strconv.FormatUint(rand.Uint64(), 36), 4)
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
	if !session.Secure || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.MaxAge <= 0 {
		t.Errorf("session cookie under TLS: %+v", session)
	}
	if r := do("GET", "/ui/pipeline", "", nil, session); r.StatusCode != http.StatusOK {
		t.Errorf("console with the session: %d", r.StatusCode)
	}
	// The API proper: the session cookie is not a credential there.
	if r := do("GET", "/v1/campaigns/x", "", nil, session); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("API with the console's cookie: %d, want 401", r.StatusCode)
	}
}
