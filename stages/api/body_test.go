package api

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// callAs is call with the given Content-Type header (none if empty).
func (a *secAPI) callAs(method, path, body, contentType string) response {
	a.t.Helper()
	req, err := http.NewRequest(method, a.url+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secAdmin)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	bufio.NewReader(resp.Body).WriteTo(&b)
	return response{status: resp.StatusCode, header: resp.Header, body: b.String()}
}

// Every route that reads a JSON body says so in its Content-Type: anything
// else is 415 and nothing is written; a UTF-8 charset parameter is fine.
func TestContentTypeMustBeJSON(t *testing.T) {
	a := newSecAPI(t, Config{Auth: secAuth()}, false)
	dev := deviceJSON("news", "ios", iosToken, 1, "")
	tests := []struct {
		name, give string
		want       int
	}{
		{"none", "", http.StatusUnsupportedMediaType},
		{"text/plain", "text/plain", http.StatusUnsupportedMediaType},
		{"a form", "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"another charset", "application/json; charset=latin1", http.StatusUnsupportedMediaType},
		{"malformed", "application/json;;", http.StatusUnsupportedMediaType},
		{"json", "application/json", http.StatusAccepted},
		{"json, UTF-8", "application/json; charset=UTF-8", http.StatusAccepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.callAs("POST", "/v1/devices", dev, tt.give)
			if r.status != tt.want {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tt.want)
			}
			if tt.want == http.StatusUnsupportedMediaType && !strings.Contains(r.error(), "Content-Type must be application/json") {
				t.Fatalf("415 without saying what to send: %s", r.body)
			}
		})
	}
	for _, rt := range []struct{ method, path, body string }{
		{"POST", "/v1/devices/batch", "[" + dev + "]"},
		{"PUT", "/v1/users/7/preferences", `{}`},
		{"POST", "/v1/campaigns", `{"app":"news","channels":["x"],"notification":{"title":"t"}}`},
	} {
		if r := a.callAs(rt.method, rt.path, rt.body, "text/plain"); r.status != http.StatusUnsupportedMediaType {
			t.Errorf("%s %s as text/plain: got %d %s, want 415", rt.method, rt.path, r.status, r.body)
		}
	}
	// Routes that read no body do not care.
	if r := a.callAs("DELETE", "/v1/devices/news/"+iosToken, "", ""); r.status != http.StatusAccepted {
		t.Errorf("DELETE without a Content-Type: got %d %s", r.status, r.body)
	}
	if n := a.ingested(); n != 3 {
		t.Fatalf("want the 2 JSON registrations and the delete, got %d events", n)
	}
}

// Each route caps its body at what its largest valid request needs: an app
// key cannot make the single-device route buffer megabytes. A 413 says to
// split only a list: one campaign sent as two reaches people twice.
func TestBodyCapPerRoute(t *testing.T) {
	a := newSecAPI(t, Config{Auth: secAuth()}, true)
	pad := func(v string, n int) string { return v + strings.Repeat(" ", n) } // valid JSON
	dev := deviceJSON("news", "ios", iosToken, 1, "")
	const shorten = "some field is far too long: shorten it"
	tests := []struct {
		name, method, path, body, key string
		status                        int
		advice                        string
	}{
		{"one device, padded to its cap", "POST", "/v1/devices", pad(dev, deviceBody-len(dev)), secNews, 202, ""},
		{"one device, a byte past its cap", "POST", "/v1/devices", pad(dev, deviceBody-len(dev)+1), secNews, 413, shorten},
		{"preferences past their cap", "PUT", "/v1/users/7/preferences", pad(`{}`, preferencesBody), secAdmin, 413, shorten},
		{"campaign past its cap", "POST", "/v1/campaigns", pad(`{}`, campaignBody), secAdmin, 413, shorten},
		{"message past its cap", "POST", "/v1/messages", pad(`{}`, messageBody), secAdmin, 413, "split it"},
		{"a batch of a megabyte", "POST", "/v1/devices/batch", pad("["+dev+"]", 1<<20), secNews, 202, ""},
	}
	for _, tt := range tests {
		r := a.call(tt.method, tt.path, tt.body, "Bearer "+tt.key)
		if r.status != tt.status {
			t.Errorf("%s: got %d %.200s, want %d", tt.name, r.status, r.body, tt.status)
		}
		if tt.status == 413 && (!strings.Contains(r.error(), "request body is larger than") || !strings.HasSuffix(r.error(), tt.advice)) {
			t.Errorf("%s: %s, want the cap and %q", tt.name, r.body, tt.advice)
		}
	}
}

// The bodies held at once are bounded: while one request holds the whole
// budget (its body still arriving), another with a body is answered 503 +
// Retry-After at once, unread; a request without a body is served; once the
// first lets go, bodies are read again.
func TestBodyMemoryBudget(t *testing.T) {
	const budget = 64 << 10
	a := newSecAPI(t, Config{Auth: secAuth(), MaxBodyBytes: budget, MaxBodyMemory: budget}, false)
	hold := func() net.Conn { // a request whose body takes the whole budget and never ends
		c := dial(t, strings.TrimPrefix(a.url, "http://"))
		write(t, c, "POST /v1/devices/batch HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer "+secAdmin+
			"\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(budget)+"\r\n\r\n[")
		return c
	}
	c := hold()
	dev := deviceJSON("news", "ios", iosToken, 1, "")
	// Generous deadlines: they only bound a wait that ends at once on a
	// quiet machine, and CI runs packages side by side under -race.
	deadline := time.Now().Add(30 * time.Second)
	var r response
	for { // until the server has taken the first request's share
		if r = a.call("POST", "/v1/devices", dev, "Bearer "+secAdmin); r.status != http.StatusAccepted || time.Now().After(deadline) {
			break
		}
		// On a loaded machine the held request can reach the budget while
		// one of these holds its small share: it is refused itself (503)
		// and holds nothing. Send it again.
		if answered(c) {
			c.Close()
			c = hold()
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "1" || !strings.Contains(r.error(), "request bodies") {
		t.Fatalf("with the budget held: got %d (Retry-After %q) %s, want 503", r.status, r.header.Get("Retry-After"), r.body)
	}
	// A refused request whose body is still coming is answered at once,
	// not after the server has read its body (or its read timeout, 30 s).
	refused := hold()
	refused.SetReadDeadline(time.Now().Add(10 * time.Second))
	status, err := bufio.NewReader(refused).ReadString('\n')
	if !strings.Contains(status, " 503 ") {
		t.Fatalf("a second held body with the budget spent: got %q (%v), want a 503 before its body ends", status, err)
	}
	refused.Close()
	if r := a.call("DELETE", "/v1/devices/news/"+iosToken, "", "Bearer "+secAdmin); r.status != http.StatusAccepted {
		t.Fatalf("a request without a body: got %d %s", r.status, r.body)
	}
	c.Close() // the held body ends early: its share comes back
	deadline = time.Now().Add(30 * time.Second)
	for {
		r = a.call("POST", "/v1/devices", dev, "Bearer "+secAdmin)
		if r.status == http.StatusAccepted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the budget never came back: %d %s", r.status, r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// answered reports whether the server has written anything on c, waiting a
// moment at most.
func answered(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
	defer c.SetReadDeadline(time.Time{})
	n, _ := c.Read(make([]byte, 1))
	return n > 0
}

// A compressed body (Content-Encoding: gzip, which some HTTP clients add on
// their own) is a 415 saying to send it uncompressed, not a "bad JSON"
// about its first byte; nothing of it is written.
func TestCompressedBodyIsRefused(t *testing.T) {
	a := newSecAPI(t, Config{Auth: secAuth()}, false)
	dev := deviceJSON("news", "ios", iosToken, 1, "")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(dev))
	zw.Close()
	tests := []struct {
		name, encoding, body string
		want                 int
	}{
		{"gzip", "gzip", gz.String(), http.StatusUnsupportedMediaType},
		{"gzip, listed twice", "gzip, gzip", gz.String(), http.StatusUnsupportedMediaType},
		{"br", "br", dev, http.StatusUnsupportedMediaType},
		{"identity", "identity", dev, http.StatusAccepted},
		{"none", "", dev, http.StatusAccepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest("POST", a.url+"/v1/devices", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+secAdmin)
			req.Header.Set("Content-Type", "application/json")
			if tt.encoding != "" {
				req.Header.Set("Content-Encoding", tt.encoding)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			r := response{status: resp.StatusCode, header: resp.Header, body: string(b)}
			if r.status != tt.want {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tt.want)
			}
			if tt.want == http.StatusUnsupportedMediaType &&
				(!strings.Contains(r.error(), "Content-Encoding "+strconv.Quote(tt.encoding)) || !strings.Contains(r.error(), "uncompressed")) {
				t.Errorf("415 without naming the encoding and what to send: %s", r.body)
			}
		})
	}
	if n := a.ingested(); n != 2 {
		t.Fatalf("%d events, want the 2 uncompressed registrations", n)
	}
}
