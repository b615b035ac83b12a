package api

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// throttled is an API whose wrong-token budget is small (3 at once, then one
// a second), trusting the proxy at trusted, and what it logged.
func throttled(t *testing.T, trusted string) (*secAPI, *pipelinetest.Logs) {
	t.Helper()
	proxies, err := ParseTrustedProxies(trusted)
	if err != nil {
		t.Fatal(err)
	}
	cfg := secConfig(t, Config{Auth: secAuth(), AuthFailRate: 1, AuthFailBurst: 3, TrustedProxies: proxies}, false)
	logs := &pipelinetest.Logs{}
	cfg.Log = zerolog.New(logs)
	srv := httptest.NewServer(New(cfg))
	t.Cleanup(srv.Close)
	return &secAPI{t: t, url: srv.URL, keys: cfg.Keys, cfg: cfg}, logs
}

// get is GET path with an Authorization header (none if empty) and an
// X-Forwarded-For (none if empty).
func (a *secAPI) get(path, authorization, forwardedFor string) response {
	a.t.Helper()
	req, _ := http.NewRequestWithContext(a.t.Context(), "GET", a.url+path, nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if forwardedFor != "" {
		req.Header.Set("X-Forwarded-For", forwardedFor)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	resp.Body.Close()
	return response{status: resp.StatusCode, header: resp.Header}
}

// TestWrongTokensThrottled: an address that sent its budget of wrong
// tokens gets 429 with Retry-After, for the operator token too, until the
// budget refills; right tokens cost nothing; an app key and a request
// without a token are not held back; the address is logged once for the
// run. The API answered every wrong token at once, as fast as a guesser
// could send them.
func TestWrongTokensThrottled(t *testing.T) {
	a, logs := throttled(t, "")
	const path = "/v1/openapi.json" // any valid token may read it
	wrong, admin, app := "Bearer "+secAdmin+"-guess", "Bearer "+secAdmin, "Bearer "+secNews
	// Right tokens are free: 50 of them between two wrong ones leave the
	// budget where it was.
	for i := range 2 {
		if r := a.get(path, wrong, ""); r.status != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d, want 401", i+1, r.status)
		}
	}
	for range 50 {
		if r := a.get(path, admin, ""); r.status != http.StatusOK {
			t.Fatalf("the operator token within budget: %d, want 200", r.status)
		}
	}
	if r := a.get(path, wrong, ""); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong token 3 (the budget's last): %d, want 401", r.status)
	}
	tests := []struct {
		name          string
		authorization string
		want          int
	}{
		{"a wrong token", wrong, http.StatusTooManyRequests},
		// Let through, it would tell a guesser its guess was right.
		{"the operator token", admin, http.StatusTooManyRequests},
		{"an app key", app, http.StatusOK},
		{"no token", "", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		r := a.get(path, tt.authorization, "")
		if r.status != tt.want {
			t.Errorf("out of budget, %s: %d, want %d", tt.name, r.status, tt.want)
		}
		if tt.want == http.StatusTooManyRequests {
			if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 || secs > 3 {
				t.Errorf("out of budget, %s: Retry-After %q, want 1 to 3 s", tt.name, r.header.Get("Retry-After"))
			}
		}
	}
	if n := strings.Count(logs.String(), "throttled"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `"client":"127.0.0.1"`) {
		t.Errorf("the log does not name the address:\n%s", logs.String())
	}
	// The wrong token charged while out of budget is a debt: the wait
	// covers it, then the operator token is served again.
	wait := time.Duration(0)
	for a.get(path, admin, "").status == http.StatusTooManyRequests {
		if wait > 5*time.Second {
			t.Fatal("the operator token still refused 5 s after the last wrong one")
		}
		time.Sleep(250 * time.Millisecond)
		wait += 250 * time.Millisecond
	}
}

// TestThrottleKeyedByClient: behind a trusted proxy each client has its
// own budget, named by the nearest untrusted address of X-Forwarded-For (a
// client writing addresses left of it changes nothing); from an untrusted
// peer the header is the client's own words and is ignored.
func TestThrottleKeyedByClient(t *testing.T) {
	wrong, admin := "Bearer guess-0123456789abcdef", "Bearer "+secAdmin
	tests := []struct {
		name    string
		trusted string
		spent   string // X-Forwarded-For of the client that spends its budget
		other   string // X-Forwarded-For of the next request, with the operator token
		want    int
	}{
		{"another client behind the proxy", "127.0.0.1", "203.0.113.5", "203.0.113.6", http.StatusOK},
		{"the same client behind the proxy", "127.0.0.1", "203.0.113.5", "203.0.113.5", http.StatusTooManyRequests},
		{"the same client, forging the left", "127.0.0.1", "203.0.113.5", "198.51.100.1, 203.0.113.5", http.StatusTooManyRequests},
		{"two proxies", "127.0.0.1,10.0.0.0/8", "203.0.113.5, 10.1.2.3", "203.0.113.5, 10.9.9.9", http.StatusTooManyRequests},
		{"the same /64", "127.0.0.1", "2001:db8:1:2::1", "2001:db8:1:2::ffff", http.StatusTooManyRequests},
		{"another /64", "127.0.0.1", "2001:db8:1:2::1", "2001:db8:1:3::1", http.StatusOK},
		{"untrusted peer: the header is ignored", "", "203.0.113.5", "203.0.113.6", http.StatusTooManyRequests},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := throttled(t, tt.trusted)
			for range 4 {
				a.get("/v1/openapi.json", wrong, tt.spent)
			}
			if r := a.get("/v1/openapi.json", wrong, tt.spent); r.status != http.StatusTooManyRequests {
				t.Fatalf("the client that spent its budget: %d, want 429", r.status)
			}
			if r := a.get("/v1/openapi.json", admin, tt.other); r.status != tt.want {
				t.Errorf("X-Forwarded-For %q: %d, want %d", tt.other, r.status, tt.want)
			}
		})
	}
}

// TestClientAddr: the address a request is counted under.
func TestClientAddr(t *testing.T) {
	trusted, err := ParseTrustedProxies(DefaultTrustedProxies)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		peer   string
		header map[string]string
		want   string
	}{
		{"no proxy", "198.51.100.7:5000", nil, "198.51.100.7"},
		{"untrusted peer's header", "198.51.100.7:5000", map[string]string{"X-Forwarded-For": "203.0.113.5"}, "198.51.100.7"},
		{"proxy", "10.0.0.2:5000", map[string]string{"X-Forwarded-For": "203.0.113.5"}, "203.0.113.5"},
		{"proxy without the header", "10.0.0.2:5000", nil, "10.0.0.2"},
		{"proxy chain", "10.0.0.2:5000", map[string]string{"X-Forwarded-For": "1.2.3.4, 203.0.113.5, 192.168.1.1"}, "203.0.113.5"},
		{"Forwarded", "10.0.0.2:5000", map[string]string{"Forwarded": `for=192.0.2.60;proto=https, for="[2001:db8:cafe::17]:4711"`}, "2001:db8:cafe::"},
		{"unreadable hop", "10.0.0.2:5000", map[string]string{"X-Forwarded-For": "203.0.113.5, unknown"}, "10.0.0.2"},
		{"IPv6 peer: its /64", "[2001:db8:1:2:3:4:5:6]:5000", nil, "2001:db8:1:2::"},
		{"IPv4-mapped", "[::ffff:198.51.100.7]:5000", nil, "198.51.100.7"},
		{"no peer", "pipe", nil, "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.peer
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			if got := clientAddr(r, trusted).String(); got != tt.want {
				t.Errorf("%s: %s, want %s", tt.peer, got, tt.want)
			}
		})
	}
}

// TestParseTrustedProxies: prefixes and single addresses; a mistake is
// named, all of them at once.
func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies(" 10.0.0.0/8, 192.0.2.1 ,::1,")
	if err != nil || len(got) != 3 || got[1] != netip.MustParsePrefix("192.0.2.1/32") || got[2] != netip.MustParsePrefix("::1/128") {
		t.Errorf("got %v, %v", got, err)
	}
	_, err = ParseTrustedProxies("10.0.0.0/33,proxy.local")
	if err == nil || !strings.Contains(err.Error(), `"10.0.0.0/33"`) || !strings.Contains(err.Error(), `"proxy.local"`) {
		t.Errorf("error %v, want both named", err)
	}
}

// TestThrottleBounded: a flood of addresses, each failing once, never
// grows the map past authClients.
func TestThrottleBounded(t *testing.T) {
	th := newAuthThrottle(1, 3, nil, zerolog.Nop())
	r := httptest.NewRequest("GET", "/", nil)
	for i := range authClients + 1000 {
		r.RemoteAddr = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String() + ":1"
		th.Failed(r)
	}
	if n := len(th.clients); n > authClients {
		t.Fatalf("%d addresses remembered, want at most %d", n, authClients)
	}
	// The newest is remembered: eviction makes room, it does not refuse.
	if _, ok := th.clients[clientAddr(r, nil)]; !ok {
		t.Error("the last address is not counted")
	}
}
