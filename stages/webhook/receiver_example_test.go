package webhook_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/stages/webhook"
)

// The README's receiver example's verify, verbatim between the markers
// (the test below checks the README shows exactly this).

// README-EXAMPLE-START
// errTooLarge is a body over verify's limit: answer it 413, and
// pushpipe's log says to lower --batch (a cut body fails its signature).
var errTooLarge = errors.New("body over 10 MiB")

// verify returns the body of a pushpipe webhook POST if its
// Pushpipe-Signature holds for secret and is less than 5 minutes old.
func verify(r *http.Request, secret []byte) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 10<<20+1))
	if err != nil {
		return nil, err
	}
	if len(body) > 10<<20 {
		return nil, errTooLarge
	}
	var ts string
	var sigs []string
	times := 0
	for _, kv := range strings.Split(r.Header.Get("Pushpipe-Signature"), ",") {
		k, v, _ := strings.Cut(kv, "=")
		if k == "t" {
			ts, times = v, times+1
		} else if k == "v1" {
			sigs = append(sigs, v)
		}
	}
	// One t, written as pushpipe writes it: digits, no "+" or leading 0.
	t, err := strconv.ParseInt(ts, 10, 64)
	if times != 1 || err != nil || strconv.FormatInt(t, 10) != ts || time.Since(time.Unix(t, 0)).Abs() > 5*time.Minute {
		return nil, errors.New("stale, missing or ambiguous timestamp")
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := hex.EncodeToString(mac.Sum(nil))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return body, nil // then dedupe the events by "id"
		}
	}
	return nil, errors.New("bad signature")
}

// README-EXAMPLE-END

// The example accepts what Sign signs, with any secret of a rotation, and
// refuses a wrong secret, a changed body, an old timestamp and a header
// with two or a non-canonical one, as webhook.Verify does; the README
// shows it verbatim.
func TestReceiverExample(t *testing.T) {
	body := []byte(`{"events":[{"id":"c:1:2"}]}`)
	// A --batch of ~30,000 events: over the 10 MiB verify reads.
	large := []byte(`{"events":[` + strings.Repeat(`{"id":"c:1:2","token":"`+strings.Repeat("f", 300)+`"},`, 40000) + `{"id":"c:1:3"}]}`)
	secrets := [][]byte{[]byte("old"), []byte("new")}
	tests := []struct {
		name   string
		secret string
		at     time.Time
		body   []byte
		ok     bool
	}{
		{"new secret", "new", time.Now(), body, true},
		{"old secret", "old", time.Now(), body, true},
		{"wrong secret", "other", time.Now(), body, false},
		{"changed body", "new", time.Now(), []byte(`{"events":[]}`), false},
		{"replayed", "new", time.Now().Add(-10 * time.Minute), body, false},
		{"too large", "new", time.Now(), large, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(tt.body))
			signed := body
			if len(tt.body) > len(body) {
				signed = tt.body // signed right, but more than verify reads
			}
			r.Header.Set(webhook.SignatureHeader, webhook.Sign(secrets, tt.at, signed))
			got, err := verify(r, []byte(tt.secret))
			if (err == nil) != tt.ok || (tt.ok && !bytes.Equal(got, body)) {
				t.Errorf("verify: %.40q, %v; want ok %v", got, err, tt.ok)
			}
			if bytes.Equal(tt.body, large) && !errors.Is(err, errTooLarge) {
				t.Errorf("verify of a body over its limit: %v, want errTooLarge (a receiver answering 401 to it has pushpipe say to check the secret)", err)
			}
			if bytes.Equal(tt.body, large) {
				return // webhook.Verify takes a body read whole
			}
			if err := webhook.Verify(r.Header.Get(webhook.SignatureHeader), []byte(tt.secret), tt.body, time.Now(), 5*time.Minute); (err == nil) != tt.ok {
				t.Errorf("webhook.Verify: %v; want ok %v", err, tt.ok)
			}
		})
	}

	// A header pushpipe would not send is refused by both, whatever its
	// v1: one with two t=, or a t written another way ("+", a leading
	// 0), each signed as written. Both read the last t, and a number.
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	old := strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)
	signed := func(t string) string { return "t=" + t + ",v1=" + hmacHex([]byte("new"), t, body) }
	headers := []struct {
		name, give string
		ok         bool
	}{
		{"as Sign writes it", signed(ts), true},
		{"v1 first", "v1=" + hmacHex([]byte("new"), ts, body) + ",t=" + ts, true},
		{"another scheme beside v1", signed(ts) + ",v0=abc", true},
		{"two t, the same", "t=" + ts + "," + signed(ts), false},
		{"two t, the last signed", "t=" + old + "," + signed(ts), false},
		{"t with a plus", signed("+" + ts), false},
		{"t with a leading zero", signed("0" + ts), false},
		{"t of nothing", signed(""), false},
	}
	for _, tt := range headers {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(body))
			r.Header.Set(webhook.SignatureHeader, tt.give)
			if _, err := verify(r, []byte("new")); (err == nil) != tt.ok {
				t.Errorf("verify of %q: %v; want ok %v", tt.give, err, tt.ok)
			}
			if err := webhook.Verify(tt.give, []byte("new"), body, now, 5*time.Minute); (err == nil) != tt.ok {
				t.Errorf("webhook.Verify of %q: %v; want ok %v", tt.give, err, tt.ok)
			}
		})
	}

	src, err := os.ReadFile("receiver_example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(src), "// README-EXAMPLE-START\n")
	example, _, _ := strings.Cut(rest, "\n// README-EXAMPLE-END")
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The README's block is a whole program (TestReadmeReceiverRuns builds
	// it) ending with this.
	if !strings.Contains(string(readme), "\n\n"+example+"```") {
		t.Errorf("the README's receiver example is not the code tested here; paste it:\n%s", example)
	}
}
