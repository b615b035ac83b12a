package api

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// The credentials of the auth and limits tests.
const (
	secAdmin = "op-4f1c2e9a7b0d3c58"
	secNews  = "app-news-93b1d0e6a2f4"
	secSport = "app-sport-5e7a42c9b1d8"
)

func secAuth() Auth {
	return Auth{AdminToken: secAdmin, AppKeys: map[string]string{"news": secNews, "sport": secSport}}
}

// secAPI is an API server on the shared Redis (its own key prefix) and,
// when asked, its own migrated database.
type secAPI struct {
	t    *testing.T
	url  string
	keys pipeline.Keys
	cfg  Config
}

func newSecAPI(t *testing.T, cfg Config, withDB bool) *secAPI {
	t.Helper()
	cfg = secConfig(t, cfg, withDB)
	srv := httptest.NewServer(New(cfg))
	t.Cleanup(srv.Close)
	return &secAPI{t: t, url: srv.URL, keys: cfg.Keys, cfg: cfg}
}

// secConfig completes cfg with a Redis client, a fresh key prefix and, if
// asked, a fresh migrated database.
func secConfig(tb testing.TB, cfg Config, withDB bool) Config {
	tb.Helper()
	rdb, err := pipeline.NewRedis(env.Redis.Addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(rdb.Close)
	if withDB {
		url := pipelinetest.MigratedDatabaseT(tb, env.Postgres)
		db, err := pgxpool.New(context.Background(), url)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(db.Close)
		cfg.DB = db
	}
	cfg.Redis, cfg.Log = rdb, zerolog.Nop()
	cfg.Keys = pipeline.NewKeys("t"+strconv.FormatUint(rand.Uint64(), 36), 16)
	return cfg
}

// call sends one request with the raw Authorization header given (none if
// empty) and returns the answer.
func (a *secAPI) call(method, path, body, authorization string) response {
	a.t.Helper()
	return a.callWith(http.DefaultClient, method, path, body, authorization)
}

// callWith is call through client (one that follows no redirects, say).
func (a *secAPI) callWith(client *http.Client, method, path, body, authorization string) response {
	a.t.Helper()
	req, err := http.NewRequest(method, a.url+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := client.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// ingested counts the entries of the ingest stream.
func (a *secAPI) ingested() int64 {
	a.t.Helper()
	var n int64
	for _, s := range a.keys.Streams(pipeline.StreamIngest) {
		l, err := a.cfg.Redis.Do(context.Background(), a.cfg.Redis.B().Xlen().Key(s).Build()).AsInt64()
		if err != nil {
			a.t.Fatal(err)
		}
		n += l
	}
	return n
}

// concrete fills a route pattern's wildcards; {app} is the given app.
func concrete(pattern, app string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	return method, strings.NewReplacer("{app}", app, "{token}", iosToken, "{channel}", "breaking",
		"{user_id}", "7", "{id}", "c-auth-test").Replace(path)
}

// validBody is a well-formed body for a route, for app (device routes).
func validBody(pattern, app string) string {
	switch {
	case strings.HasPrefix(pattern, "POST /v1/devices/batch"):
		return "[" + deviceJSON(app, "ios", iosToken, 1, "") + "]"
	case strings.HasPrefix(pattern, "POST /v1/devices"):
		return deviceJSON(app, "ios", iosToken, 1, "")
	case strings.HasPrefix(pattern, "PUT /v1/users/"):
		return `{"muted_channels":["promo"]}`
	case strings.HasPrefix(pattern, "POST /v1/campaigns"):
		return `{"app":"news","channels":["breaking"],"notification":{"title":"t","body":"b"}}`
	}
	return ""
}

// Every endpoint in routes() answers 401 with WWW-Authenticate to a request
// without a known bearer token, before reading anything, and writes nothing.
func TestEveryEndpointNeedsAToken(t *testing.T) {
	t.Parallel()
	// Hundreds of wrong tokens from one address: unthrottled here, so each
	// gets its 401 (the throttle has tests of its own, throttle_test.go).
	a := newSecAPI(t, Config{Auth: secAuth(), AuthFailRate: -1}, true)
	bad := map[string]string{
		"no header":         "",
		"unknown token":     "Bearer guess",
		"empty bearer":      "Bearer ",
		"other scheme":      "Basic " + secAdmin,
		"token only":        secAdmin,
		"admin token + 1":   "Bearer " + secAdmin + "x",
		"admin token - 1":   "Bearer " + secAdmin[:len(secAdmin)-1],
		"app key of nobody": "Bearer app-weather-000000",
	}
	routes := New(Config{}).routes()
	if len(routes) < 8 {
		t.Fatalf("routes() lists %d endpoints; the contract has 8", len(routes))
	}
	for _, rt := range routes {
		if rt.scope == scopeConsole {
			continue // its own sign-in and session: stages/api/console's tests
		}
		method, path := concrete(rt.pattern, "news")
		for name, authz := range bad {
			r := a.call(method, path, validBody(rt.pattern, "news"), authz)
			if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") ||
				!strings.Contains(r.error(), "bearer token") {
				t.Errorf("%s %s, %s: got %d (WWW-Authenticate %q) %s, want 401 with a Bearer challenge",
					method, path, name, r.status, r.header.Get("WWW-Authenticate"), r.body)
			}
		}
	}
	// Unknown paths do not tell an anonymous caller they do not exist.
	if r := a.call("GET", "/v1/secrets", "", ""); r.status != http.StatusUnauthorized {
		t.Errorf("unknown path without a token: got %d, want 401", r.status)
	}
	// Two Authorization headers are refused, even if both hold the token.
	req, _ := http.NewRequest("GET", a.url+"/v1/campaigns/c-auth-test", nil)
	req.Header.Add("Authorization", "Bearer "+secAdmin)
	req.Header.Add("Authorization", "Bearer "+secAdmin)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("two Authorization headers: got %v %v, want 401", resp.Status, err)
	} else {
		resp.Body.Close()
	}
	if r := a.call("GET", "/v1/secrets", "", "Bearer "+secAdmin); r.status != http.StatusNotFound {
		t.Errorf("unknown path with the admin token: got %d, want 404", r.status)
	}
	if n := a.ingested(); n != 0 {
		t.Fatalf("unauthenticated requests wrote %d events", n)
	}
}

// Authentication comes before routing: without a token, a canonical path, a
// non-canonical one the mux would redirect, an unknown one and a known path
// with the wrong method all get the very same 401, so paths cannot be
// enumerated.
func TestAuthenticationBeforeRouting(t *testing.T) {
	a := newSecAPI(t, Config{Auth: secAuth()}, false)
	// Go's client would clean none of these paths, but would follow a
	// redirect: refuse to, so a 307 shows.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var first string
	for _, tt := range []struct{ method, path string }{
		{"GET", "/v1/campaigns/x"},
		{"GET", "//v1/campaigns/x"},
		{"GET", "/v1/campaigns/./x"},
		{"GET", "/v1/campaigns/.."},
		{"POST", "/v1//devices"},
		{"GET", "/v1/secrets"},
		{"GET", "/"},
		{"DELETE", "/v1/campaigns/x"},
		{"PATCH", "/v1/devices"},
		// Under /ui/ once decoded or cleaned, but routed to the API
		// (its 404, a redirect to its route): not the console's.
		{"GET", "/ui%2F..%2Fv1/campaigns"},
		{"GET", "/ui%2fx"},
		{"GET", "/ui/../v1/campaigns/x"},
		{"POST", "/ui/./../v1/devices"},
	} {
		req, err := http.NewRequest(tt.method, a.url+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if first == "" {
			first = string(b)
		}
		if resp.StatusCode != http.StatusUnauthorized || string(b) != first || resp.Header.Get("Location") != "" {
			t.Errorf("%s %s without a token: got %d %q (Location %q), want the same 401 as every other path",
				tt.method, tt.path, resp.StatusCode, b, resp.Header.Get("Location"))
		}
	}
}

// A browser opened on the API's address, which make dev prints, gets the
// 401 every path gets: it names the console, which a browser can use.
func TestUnauthorizedNamesTheConsole(t *testing.T) {
	a := newSecAPI(t, Config{Auth: secAuth()}, false)
	for _, path := range []string{"/", "/v1/campaigns"} {
		r := a.call("GET", path, "", "")
		if r.status != http.StatusUnauthorized || !strings.Contains(r.error(), "in a browser: the console, /ui/") {
			t.Errorf("GET %s without a token: %d %s, want a 401 naming the console at /ui/", path, r.status, r.body)
		}
	}
	if r := a.call("GET", "/ui/", "", ""); r.status == http.StatusUnauthorized || r.status == http.StatusNotFound {
		t.Errorf("GET /ui/ without a token: %d, want the console's own sign-in", r.status)
	}
}

// App keys are good only for /v1/devices* of their own app: every operator
// endpoint is 403, and so is another app's device (single, batch, delete).
// The operator token passes everywhere; the scheme is case-insensitive.
func TestScopes(t *testing.T) {
	t.Parallel()
	a := newSecAPI(t, Config{Auth: secAuth()}, true)
	for _, rt := range New(Config{}).routes() {
		if rt.scope == scopeConsole {
			continue // no bearer token at all: stages/api/console's tests
		}
		method, path := concrete(rt.pattern, "news")
		body := validBody(rt.pattern, "news")
		own := a.call(method, path, body, "Bearer "+secNews)
		admin := a.call(method, path, body, "bearer "+secAdmin)
		if admin.status == http.StatusUnauthorized || admin.status == http.StatusForbidden {
			t.Errorf("%s %s with the admin token: got %d %s", method, path, admin.status, admin.body)
		}
		switch rt.scope {
		case scopeAdmin:
			// It said app keys "may only register" devices: they delete
			// them too.
			if own.status != http.StatusForbidden || !strings.Contains(own.error(), "operator token") ||
				!strings.Contains(own.error(), "may only register and delete their own app's devices (/v1/devices*)") ||
				own.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with an app key: got %d %s, want 403", method, path, own.status, own.body)
			}
		case scopeApp:
			if own.status != http.StatusAccepted {
				t.Errorf("%s %s with its own app's key: got %d %s, want 202", method, path, own.status, own.body)
			}
			m, p := concrete(rt.pattern, "sport")
			other := a.call(m, p, validBody(rt.pattern, "sport"), "Bearer "+secNews)
			if other.status != http.StatusForbidden || !strings.Contains(other.error(), `not "sport"`) {
				t.Errorf("%s %s with another app's key: got %d %s, want 403", m, p, other.status, other.body)
			}
		case scopeAny:
			if own.status != http.StatusOK {
				t.Errorf("%s %s with an app key: got %d %s, want 200", method, path, own.status, own.body)
			}
		}
	}
	// One foreign item poisons the whole batch: nothing of it is written.
	before := a.ingested()
	mixed := "[" + deviceJSON("news", "ios", iosToken, 1, "") + "," + deviceJSON("sport", "ios", iosToken, 2, "") + "]"
	if r := a.call("POST", "/v1/devices/batch", mixed, "Bearer "+secNews); r.status != http.StatusForbidden ||
		!strings.Contains(r.error(), "item 1") {
		t.Fatalf("batch with another app's item: got %d %s, want 403 naming item 1", r.status, r.body)
	}
	if after := a.ingested(); after != before {
		t.Fatalf("a refused batch wrote %d events", after-before)
	}
}

// With --insecure-no-auth every request passes as the operator.
func TestInsecureServesEveryone(t *testing.T) {
	a := newSecAPI(t, Config{Auth: Auth{Insecure: true}}, false)
	if r := a.call("POST", "/v1/devices", deviceJSON("news", "ios", iosToken, 1, ""), ""); r.status != http.StatusAccepted {
		t.Fatalf("insecure: got %d %s", r.status, r.body)
	}
}

// pushpipe api refuses to start without credentials unless
// --insecure-no-auth; a configuration where one secret means two things is
// refused too. (bench/secrettest runs the built binary.)
func TestValidateRefusesAnOpenAPI(t *testing.T) {
	for _, tt := range []struct {
		name string
		auth Auth
		want string // "" = valid
	}{
		{"nothing configured", Auth{}, "--insecure-no-auth"},
		{"empty key map", Auth{AppKeys: map[string]string{}}, "no credentials configured"},
		// An apps file without keys (at start, or after a SIGHUP removed
		// its last): the file was not named as a fix.
		{"apps file without keys", Auth{FileKeys: map[string][]string{}}, "or give apps of the --apps file keys (or keys_env)"},
		{"insecure", Auth{Insecure: true}, ""},
		{"admin only", Auth{AdminToken: secAdmin}, ""},
		{"app keys only", Auth{AppKeys: map[string]string{"news": secNews}}, ""},
		{"both", secAuth(), ""},
		{"app key is the admin token", Auth{AdminToken: secAdmin, AppKeys: map[string]string{"news": secAdmin}}, "is the admin token"},
		{"two apps share a key", Auth{AppKeys: map[string]string{"news": secNews, "sport": secNews}}, "share a key"},
		{"empty key", Auth{AppKeys: map[string]string{"news": ""}}, "empty key"},
		{"short admin token", Auth{AdminToken: "x"}, "PUSHPIPE_ADMIN_TOKEN: 1 characters is too short"},
		{"admin token one short", Auth{AdminToken: secAdmin[:MinSecret-1]}, "at least 16"},
		{"admin token just long enough", Auth{AdminToken: secAdmin[:MinSecret]}, ""},
		{"short app key", Auth{AdminToken: secAdmin, AppKeys: map[string]string{"news": "k-news"}}, `key of app "news" is 6 characters`},
		// A key of the apps file is named as one: the errors said
		// PUSHPIPE_APP_KEYS, which may not even be set.
		{"short key in the apps file", Auth{AdminToken: secAdmin, FileKeys: map[string][]string{"news": {"k-news"}}},
			`the apps file's keys or keys_env: the key of app "news" is 6 characters`},
		{"apps file key is the admin token", Auth{AdminToken: secAdmin, FileKeys: map[string][]string{"news": {secAdmin}}},
			`the apps file's keys or keys_env: the key of app "news" is the admin token`},
		{"two apps share a key, env and file", Auth{AppKeys: map[string]string{"news": secNews}, FileKeys: map[string][]string{"sport": {secNews}}},
			`app "news" (PUSHPIPE_APP_KEYS) and app "sport" (the apps file's keys or keys_env) share a key`},
		// Moving an app's key from PUSHPIPE_APP_KEYS to the apps file: the
		// same key of the same app, given twice, was "apps "news" and
		// "news" share a key".
		{"one app's key in env and file", Auth{AppKeys: map[string]string{"news": secNews}, FileKeys: map[string][]string{"news": {secNews}}}, ""},
	} {
		err := tt.auth.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: got %v, want an error with %q", tt.name, err, tt.want)
		case err != nil && (strings.Contains(err.Error(), secAdmin) || strings.Contains(err.Error(), secNews)):
			t.Errorf("%s: the error quotes a secret: %v", tt.name, err)
		}
	}
}

func TestParseAppKeys(t *testing.T) {
	got, err := ParseAppKeys(" news=" + secNews + " , sport = " + secSport + ",")
	if err != nil || len(got) != 2 || got["news"] != secNews || got["sport"] != secSport {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"news", "news=", "=" + secNews, "news=" + secNews + ",news=" + secSport} {
		_, err := ParseAppKeys(bad)
		if err == nil {
			t.Errorf("%q: accepted", bad)
		} else if strings.Contains(err.Error(), secNews) || strings.Contains(err.Error(), secSport) {
			t.Errorf("%q: the error quotes a key: %v", bad, err)
		}
	}
}

// Printing an Auth in any way shows no secret.
func TestAuthPrintsNoSecret(t *testing.T) {
	a := secAuth()
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, a)
		if strings.Contains(out, secAdmin) || strings.Contains(out, secNews) || strings.Contains(out, secSport) {
			t.Errorf("%s prints a secret: %s", format, out)
		}
		if !strings.Contains(out, "news") {
			t.Errorf("%s should still name the apps: %s", format, out)
		}
	}
	if out := fmt.Sprintf("%+v", Config{Auth: a}); strings.Contains(out, secAdmin) || strings.Contains(out, secNews) {
		t.Errorf("a Config prints a secret: %s", out)
	}
}
