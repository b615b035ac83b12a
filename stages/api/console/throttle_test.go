package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/stages/api"
)

// TestSignInThrottled: the sign-in form takes a few wrong tokens from an
// address, then answers 429 with Retry-After and says when to try again,
// the right token included until then (an answer to it would tell a
// guesser it was right); the API's bearer routes spend the same budget, as
// they take the same operator token. Every wrong token was compared, as
// fast as a guesser sent them.
func TestSignInThrottled(t *testing.T) {
	tests := []struct {
		name  string
		spend func(t *testing.T, base string) // three wrong tokens
	}{
		{"at the sign-in form", func(t *testing.T, base string) {
			for i := range 3 {
				if status, _, _ := signInWith(t, base, "not-the-token-0123456789"); status != http.StatusUnauthorized {
					t.Fatalf("wrong token %d: %d, want 401", i+1, status)
				}
			}
		}},
		{"at the API", func(t *testing.T, base string) {
			for i := range 3 {
				req, _ := http.NewRequestWithContext(context.Background(), "GET", base+api.OpenAPIPath, nil)
				req.Header.Set("Authorization", "Bearer not-the-token-0123456789")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("wrong bearer token %d: %d, want 401", i+1, resp.StatusCode)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdb, keys := sessionRedis(t)
			srv := httptest.NewServer(api.New(api.Config{Redis: rdb, Keys: keys, Log: zerolog.Nop(),
				Auth: api.Auth{AdminToken: adminToken}, AuthFailRate: 1, AuthFailBurst: 3}))
			t.Cleanup(srv.Close)
			tt.spend(t, srv.URL)
			for _, tok := range []string{"not-the-token-0123456789", adminToken} {
				status, h, body := signInWith(t, srv.URL, tok)
				secs, err := strconv.Atoi(h.Get("Retry-After"))
				if status != http.StatusTooManyRequests || err != nil || secs < 1 || h.Get("Set-Cookie") != "" ||
					!strings.Contains(body, "Too many wrong tokens from your address: try again in "+h.Get("Retry-After")+" s") {
					t.Errorf("sign-in out of budget: %d, Retry-After %q, Set-Cookie %q:\n%s", status, h.Get("Retry-After"), h.Get("Set-Cookie"), body)
				}
			}
			// Once the budget refills, the operator token signs in.
			deadline := time.Now().Add(5 * time.Second)
			for {
				status, h, _ := signInWith(t, srv.URL, adminToken)
				if status == http.StatusSeeOther && h.Get("Set-Cookie") != "" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the operator token still refused 5 s later: %d", status)
				}
				time.Sleep(250 * time.Millisecond)
			}
		})
	}
}

// signInWith posts the sign-in form with tok: the status, headers and body.
func signInWith(t *testing.T, base, tok string) (int, http.Header, string) {
	t.Helper()
	resp, err := noRedirects.PostForm(base+"/ui/signin", url.Values{"token": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}
