package console_test

import (
	"context"
	"io"
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

// TestSignOutThatFailsSaysSo: a sign-out whose session Redis did not delete
// (here an ACL user that may not DEL) must not tell the operator they are
// signed out and drop the cookie while the session stays good: the page
// says it failed, and the session's cookie is kept for a second try.
func TestSignOutThatFailsSaysSo(t *testing.T) {
	admin, err := pipeline.NewRedis(env.Redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	user := "nodel" + strconv.FormatUint(rand.Uint64(), 36)
	ctx := context.Background()
	if err := admin.Do(ctx, admin.B().Arbitrary("ACL", "SETUSER").Args(user, "on", ">pw-"+user, "~*", "&*", "+@all", "-del", "-unlink").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Do(ctx, admin.B().Arbitrary("ACL", "DELUSER").Args(user).Build()) })
	rdb, err := pipeline.NewRedisConfig(pipeline.RedisConfig{Addr: env.Redis.Addr, Username: user, Password: "pw-" + user})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	keys := pipeline.NewKeys("t"+strconv.FormatUint(rand.Uint64(), 36), 4)
	srv := httptest.NewServer(api.New(api.Config{Redis: rdb, Keys: keys, Log: zerolog.Nop(), Auth: api.Auth{AdminToken: adminToken}}))
	t.Cleanup(srv.Close)

	session := consoleCookie(t, srv.URL, "/ui/signin", url.Values{"token": {adminToken}}, nil)
	form := url.Values{"csrf": {csrfOf(t, srv.URL, session)}}
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/ui/signout", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(session)
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "Not signed out") {
		t.Errorf("sign-out Redis refused: %d (Location %q), want 503 saying it failed", resp.StatusCode, resp.Header.Get("Location"))
	}
	if c := resp.Cookies(); len(c) != 0 {
		t.Errorf("sign-out Redis refused cleared the cookie: %v", c)
	}
	// The session is still good: the page told the truth.
	csrfOf(t, srv.URL, session)
}

// TestSignInEndsTheBrowsersOldSession: signing in again from a browser
// ends the session that browser held (a copy of its old cookie opens
// nothing more); a sign-in from another browser ends no one else's.
func TestSignInEndsTheBrowsersOldSession(t *testing.T) {
	rdb, keys := sessionRedis(t)
	srv := httptest.NewServer(api.New(api.Config{Redis: rdb, Keys: keys, Log: zerolog.Nop(), Auth: api.Auth{AdminToken: adminToken}}))
	t.Cleanup(srv.Close)
	signIn := func(cookies ...*http.Cookie) *http.Cookie {
		return consoleCookie(t, srv.URL, "/ui/signin", url.Values{"token": {adminToken}}, nil, cookies...)
	}
	opens := func(c *http.Cookie) bool {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", srv.URL+"/ui/pipeline", nil)
		req.AddCookie(c)
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	tests := []struct {
		name     string
		sameOne  bool // the second sign-in sends the first one's cookie
		oldOpens bool
	}{
		{"the same browser again", true, false},
		{"another browser", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := signIn()
			var second *http.Cookie
			if tt.sameOne {
				second = signIn(first)
			} else {
				second = signIn()
			}
			if got := opens(first); got != tt.oldOpens {
				t.Errorf("the first session opens the console: %v, want %v", got, tt.oldOpens)
			}
			if !opens(second) {
				t.Error("the new session does not open the console")
			}
		})
	}
}
