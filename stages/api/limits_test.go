package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
)

// devicesJSON is a batch of n valid devices of app, distinct tokens.
func devicesJSON(app string, n, from int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = deviceJSON(app, "ios", fmt.Sprintf("%064x", from+i), int64(from+i+1), "")
	}
	return "[" + strings.Join(items, ",") + "]"
}

// Each app key has its own bucket of device writes; a batch takes one token
// per device; past the bucket the answer is 429 with Retry-After and nothing
// is written; the operator token is not limited.
func TestDeviceWriteRateLimit(t *testing.T) {
	// A rate so low the bucket does not refill during the test: every token
	// is accounted for exactly.
	a := newSecAPI(t, Config{Auth: secAuth(), DeviceWriteRate: 0.001, DeviceWriteBurst: 10}, false)
	news := "Bearer " + secNews
	steps := []struct {
		name, method, path, body, authz string
		status                          int
	}{
		{"a batch larger than the burst", "POST", "/v1/devices/batch", devicesJSON("news", 11, 20), news, 413},
		{"batch of 4 (6 left)", "POST", "/v1/devices/batch", devicesJSON("news", 4, 0), news, 202},
		{"batch of 4 (2 left)", "POST", "/v1/devices/batch", devicesJSON("news", 4, 4), news, 202},
		{"batch of 4 is over", "POST", "/v1/devices/batch", devicesJSON("news", 4, 8), news, 429},
		{"one device (1 left)", "POST", "/v1/devices", deviceJSON("news", "ios", iosToken, 1, ""), news, 202},
		{"one delete (0 left)", "DELETE", "/v1/devices/news/" + iosToken, "", news, 202},
		{"one device is over", "POST", "/v1/devices", deviceJSON("news", "ios", iosToken, 1, ""), news, 429},
		{"one delete is over", "DELETE", "/v1/devices/news/" + iosToken, "", news, 429},
		{"an empty bucket refuses before reading", "POST", "/v1/devices/batch", "[not even JSON", news, 429},
		{"another key has its own bucket", "POST", "/v1/devices", deviceJSON("sport", "ios", iosToken, 1, ""), "Bearer " + secSport, 202},
		{"the operator is not limited", "POST", "/v1/devices/batch", devicesJSON("news", 20, 100), "Bearer " + secAdmin, 202},
	}
	for _, s := range steps {
		r := a.call(s.method, s.path, s.body, s.authz)
		if r.status != s.status {
			t.Fatalf("%s: got %d %s, want %d", s.name, r.status, r.body, s.status)
		}
		if s.status == http.StatusTooManyRequests {
			secs, err := strconv.Atoi(r.header.Get("Retry-After"))
			// 2 tokens short at 0.001/s is 2000 s; 1 token short is 1000 s.
			if err != nil || secs < 1 || secs > 2000 || !strings.Contains(r.error(), "device write rate") {
				t.Fatalf("%s: Retry-After %q, error %q", s.name, r.header.Get("Retry-After"), r.error())
			}
		}
	}
	if got, want := a.ingested(), int64(4+4+1+1+1+20); got != want {
		t.Fatalf("the stream holds %d events, want exactly the %d accepted", got, want)
	}
}

// A limited key is served again once its bucket refills (no restart, no
// state kept by the client).
func TestDeviceWriteRateRefills(t *testing.T) {
	a := newSecAPI(t, Config{Auth: secAuth(), DeviceWriteRate: 20, DeviceWriteBurst: 1}, false)
	body := deviceJSON("news", "ios", iosToken, 1, "")
	if r := a.call("POST", "/v1/devices", body, "Bearer "+secNews); r.status != http.StatusAccepted {
		t.Fatalf("first write: %d %s", r.status, r.body)
	}
	limited := false
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := a.call("POST", "/v1/devices", body, "Bearer "+secNews)
		if r.status == http.StatusTooManyRequests {
			limited = true
			if r.header.Get("Retry-After") != "1" {
				t.Fatalf("Retry-After %q, want 1 (a token every 50 ms)", r.header.Get("Retry-After"))
			}
		} else if r.status == http.StatusAccepted && limited {
			return
		} else if r.status != http.StatusAccepted {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("limited=%v: the bucket never refilled", limited)
		}
	}
}

// The default burst lets one full batch of an app key through.
func TestDefaultBurstFitsAFullBatch(t *testing.T) {
	l := newDeviceLimits(secAuth(), DefaultDeviceWriteRate, 0)
	if l.burst < MaxDeviceBatch || l.burst < 2*DefaultDeviceWriteRate {
		t.Fatalf("burst %d: want at least a batch (%d) and twice the rate", l.burst, MaxDeviceBatch)
	}
	if l := newDeviceLimits(secAuth(), 0, 0); l.byApp != nil {
		t.Fatal("rate 0 must mean no limit")
	}
}

// Bodies past MaxBodyBytes are 413 on every endpoint that reads one, with or
// without the app-key rate limit in front, and nothing is written.
func TestBodyCap(t *testing.T) {
	const limit = 4096
	a := newSecAPI(t, Config{Auth: secAuth(), MaxBodyBytes: limit, DeviceWriteRate: 1000}, false)
	padded := func(v string) string { return v + strings.Repeat(" ", limit) } // valid JSON, too long
	for _, tt := range []struct{ name, method, path, body, authz string }{
		{"device padded past the cap", "POST", "/v1/devices", padded(deviceJSON("news", "ios", iosToken, 1, "")), secNews},
		{"device with a huge locale", "POST", "/v1/devices", `{"app":"news","locale":"` + strings.Repeat("x", limit) + `"}`, secAdmin},
		{"batch past the cap, app key", "POST", "/v1/devices/batch", devicesJSON("news", 60, 0), secNews},
		{"batch past the cap, operator", "POST", "/v1/devices/batch", devicesJSON("news", 60, 0), secAdmin},
		{"preferences past the cap", "PUT", "/v1/users/7/preferences", padded(`{"muted_channels":["a"]}`), secAdmin},
		{"campaign past the cap", "POST", "/v1/campaigns", `{"app":"news","channels":["` + strings.Repeat("c", limit) + `"]}`, secAdmin},
	} {
		r := a.call(tt.method, tt.path, tt.body, "Bearer "+tt.authz)
		if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.error(), "larger than 4096 bytes") {
			t.Errorf("%s: got %d %s, want 413", tt.name, r.status, r.body)
		}
	}
	if n := a.ingested(); n != 0 {
		t.Fatalf("oversized requests wrote %d events", n)
	}
}

// A batch of more than MaxDeviceBatch items is 413, whoever sends it.
func TestBatchItemCap(t *testing.T) {
	t.Parallel()
	a := newSecAPI(t, Config{Auth: secAuth(), DeviceWriteRate: 1000}, false)
	big := devicesJSON("news", MaxDeviceBatch+1, 0)
	for _, key := range []string{secNews, secAdmin} {
		if r := a.call("POST", "/v1/devices/batch", big, "Bearer "+key); r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("%d items: got %d %s, want 413", MaxDeviceBatch+1, r.status, r.body)
		}
	}
	if n := a.ingested(); n != 0 {
		t.Fatalf("oversized batches wrote %d events", n)
	}
}

// JSON bodies are decoded strictly: an unknown field (a typo such as
// "userid" would otherwise drop data silently) or anything after the value is
// a 400 naming the problem, and nothing is written.
func TestStrictJSON(t *testing.T) {
	a := newSecAPI(t, Config{Auth: secAuth()}, false)
	dev := deviceJSON("news", "ios", iosToken, 1, "")
	for _, tt := range []struct{ name, method, path, body, want string }{
		{"device, unknown field", "POST", "/v1/devices", strings.Replace(dev, `"app"`, `"userid":1,"app"`, 1), `unknown field "userid"`},
		{"device, trailing value", "POST", "/v1/devices", dev + dev, "after the JSON"},
		{"device, trailing garbage", "POST", "/v1/devices", dev + " x", "after the JSON"},
		{"device, two values in an array", "POST", "/v1/devices", "[" + dev + "]", "a JSON array: this route takes one device object; send several to POST /v1/devices/batch"},
		{"batch, unknown field in an item", "POST", "/v1/devices/batch", "[" + dev + "," + strings.Replace(dev, `"app"`, `"admin":true,"app"`, 1) + "]", `unknown field "admin"`},
		{"batch, trailing value", "POST", "/v1/devices/batch", "[" + dev + "]" + "[" + dev + "]", "after the JSON array"},
		{"batch, an object", "POST", "/v1/devices/batch", dev, "JSON array of devices (one device alone: POST /v1/devices)"},
		// null is no object: decoded, it left the zero value, and a PUT of
		// preferences unmuted everything.
		{"preferences, null", "PUT", "/v1/users/7/preferences", `null`, "the body is null: send a JSON object"},
		{"device, null", "POST", "/v1/devices", ` null `, "the body is null"},
		{"campaign, null", "POST", "/v1/campaigns", `null`, "the body is null"},
		{"preferences, unknown field", "PUT", "/v1/users/7/preferences", `{"muted_channels":[],"muted":["x"]}`, `unknown field "muted"`},
		{"preferences, trailing value", "PUT", "/v1/users/7/preferences", `{"muted_channels":[]}{}`, "after the JSON"},
		// Field names are case-sensitive: "APP" is not "app".
		{"device, field name in capitals", "POST", "/v1/devices", strings.Replace(dev, `"app"`, `"APP"`, 1), `unknown field "APP"`},
		{"batch, field name in capitals", "POST", "/v1/devices/batch", "[" + dev + "," + strings.Replace(dev, `"token"`, `"Token"`, 1) + "]", `item 1: unknown field "Token"`},
		// A field given twice is refused, not resolved in favour of one.
		{"device, a field twice", "POST", "/v1/devices", strings.Replace(dev, `"app":"news"`, `"app":"sport","app":"news"`, 1), `duplicate field "app"`},
		{"batch, a field twice", "POST", "/v1/devices/batch", "[" + dev + "," + strings.Replace(dev, `"user_id":1`, `"user_id":1,"user_id":2`, 1) + "]", `item 1: duplicate field "user_id"`},
		{"preferences, a field twice", "PUT", "/v1/users/7/preferences", `{"muted_channels":["a"],"muted_channels":[]}`, `duplicate field "muted_channels"`},
		{"campaign, a data key twice", "POST", "/v1/campaigns", `{"app":"news","channels":["x"],"notification":{"title":"t","data":{"k":1,"k":2}}}`, `duplicate field "notification.data.k"`},
		// Invalid UTF-8 and lone surrogates are refused, not replaced by U+FFFD.
		{"device, invalid UTF-8", "POST", "/v1/devices", strings.Replace(dev, `"news"`, "\"news\xff\"", 1), "invalid UTF-8"},
		{"device, a lone surrogate", "POST", "/v1/devices", strings.Replace(dev, `"locale":""`, `"locale":"\ud800"`, 1), "invalid surrogate"},
		{"campaign, a lone surrogate in data", "POST", "/v1/campaigns", `{"app":"news","channels":["x"],"notification":{"title":"t","data":{"k":"\ud800"}}}`, "invalid surrogate"},
		{"campaign, invalid UTF-8 in the title", "POST", "/v1/campaigns", "{\"app\":\"news\",\"channels\":[\"x\"],\"notification\":{\"title\":\"\xc3\"}}", "invalid UTF-8"},
		// A byte order mark is named as such, on every route that reads JSON.
		{"device, a byte order mark", "POST", "/v1/devices", "\ufeff" + dev, "starts with a UTF-8 byte order mark (bytes EF BB BF)"},
		{"batch, a byte order mark", "POST", "/v1/devices/batch", "\ufeff[" + dev + "]", "starts with a UTF-8 byte order mark"},
		{"preferences, a byte order mark", "PUT", "/v1/users/7/preferences", "\ufeff{}", "starts with a UTF-8 byte order mark"},
	} {
		r := a.call(tt.method, tt.path, tt.body, "Bearer "+secAdmin)
		if r.status != http.StatusBadRequest || !strings.Contains(r.error(), tt.want) {
			t.Errorf("%s: got %d %s, want 400 with %q", tt.name, r.status, r.body, tt.want)
		}
	}
	if n := a.ingested(); n != 0 {
		t.Fatalf("malformed requests wrote %d events", n)
	}
}

// The server's timeouts cut off a client that sends its headers too slowly,
// one that stalls in its body, one that dribbles its body a byte at a time
// (each byte arriving in time for a per-read timeout, never finishing), and
// an idle keep-alive connection; meanwhile other clients are served.
func TestSlowClientsAreCutOff(t *testing.T) {
	a := newSecAPI(t, Config{Auth: secAuth()}, false)
	handler := New(a.cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- pipeline.ServeListenerWith(ctx, ln, handler, zerolog.Nop(), pipeline.Timeouts{
			ReadHeader: 300 * time.Millisecond, Read: time.Second, Write: 2 * time.Second, Idle: 500 * time.Millisecond,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	addr := ln.Addr().String()
	body := deviceJSON("news", "ios", iosToken, 1, "")
	head := "POST /v1/devices HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer " + secAdmin +
		"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"

	t.Run("headers never finish", func(t *testing.T) {
		c := dial(t, addr)
		write(t, c, head[:30])
		if reply := untilClosed(t, c, nil); strings.Contains(reply, " 202 ") || strings.Contains(reply, " 401 ") {
			t.Fatalf("half a request was handled: %q", reply)
		}
	})
	// A body cut off by the read timeout is a 408 that says so, without the
	// read error's text (it holds the socket addresses).
	t.Run("body stalls", func(t *testing.T) {
		c := dial(t, addr)
		write(t, c, head+body[:10])
		if reply := untilClosed(t, c, nil); !strings.HasPrefix(reply, "HTTP/1.1 408 ") ||
			!strings.Contains(reply, "read timeout") || strings.Contains(reply, "127.0.0.1") {
			t.Fatalf("a stalled body: got %q, want a 408 naming no address", reply)
		}
	})
	t.Run("body dribbles", func(t *testing.T) {
		c := dial(t, addr)
		write(t, c, head)
		// One byte every 100 ms: the whole body would take seconds, far
		// past the 1 s read timeout, but the connection never goes quiet.
		stop := make(chan struct{})
		go func() {
			for i := 0; i < len(body); i++ {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := c.Write([]byte{body[i]}); err != nil {
					return
				}
			}
		}()
		if reply := untilClosed(t, c, stop); !strings.HasPrefix(reply, "HTTP/1.1 408 ") || strings.Contains(reply, "127.0.0.1") {
			t.Fatalf("a dribbled body: got %q, want a 408 naming no address", reply)
		}
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c := dial(t, addr)
		write(t, c, head+body)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("a prompt client: got %d", resp.StatusCode)
		}
		// Nothing more is sent: the server must close the connection.
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := br.ReadByte(); err == nil || isTimeout(err) {
			t.Fatalf("an idle keep-alive connection was kept: %v", err)
		}
	})
	if n := a.ingested(); n != 1 {
		t.Fatalf("want only the prompt client's event, got %d", n)
	}
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

// untilClosed reads until the server closes the connection and returns what
// it sent. Far past the server's timeouts (and well short of the production
// ones), it gives up: the server kept the connection. stop, if not nil, is
// closed once the connection is.
func untilClosed(t *testing.T, c net.Conn, stop chan struct{}) string {
	t.Helper()
	if stop != nil {
		defer close(stop)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if isTimeout(err) {
		t.Fatalf("the server kept a slow client's connection open (read so far: %q)", b)
	}
	return string(b)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// A full batch of the largest devices the field limits allow fits the
// default body cap, as a client may write it: indented, and with its
// non-ASCII app id escaped (Python's json.dumps(indent=2) does both).
func TestLargestBatchFits(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	app := strings.Repeat(`\u00e9`, 127) // 254 bytes of UTF-8, 762 in the body
	items := make([]string, MaxDeviceBatch)
	for i := range items {
		token := fmt.Sprintf("%0512d", i)
		items[i] = fmt.Sprintf("  {\n    \"app\": \"%s\",\n    \"platform\": \"android\",\n    \"token\": \"%s\",\n"+
			"    \"user_id\": %d,\n    \"locale\": \"%s\"\n  }", app, token, int64(math.MaxInt64)-int64(i), strings.Repeat("x", 35))
	}
	body := "[\n" + strings.Join(items, ",\n") + "\n]"
	if len(body) <= 8<<20 {
		t.Fatalf("the body is %d bytes: not the largest case", len(body))
	}
	if r := a.do("POST", "/v1/devices/batch", body, ""); r.status != http.StatusAccepted {
		t.Fatalf("a full batch of %d bytes: %d %.300s, want 202", len(body), r.status, r.body)
	}
}
