package webhook_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/stages/webhook"
)

// FuzzVerify: what Sign signs verifies with any of its secrets at its time,
// and not with another secret, another body or too late; any header is
// accepted only when it carries the HMAC of its own t and the body, and
// the README's receiver (verify) and webhook.Verify agree on every header.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("s1"), []byte("s2"), []byte(`{"events":[{"id":"c:1:2"}]}`), int64(0), "t=1,v1=00")
	f.Add([]byte(""), []byte("x"), []byte(""), int64(-400), "t=+1,v1=")
	f.Add([]byte("k"), []byte("k2"), []byte("b"), int64(299), "v1=ab,t=9223372036854775807")
	f.Add([]byte("k"), []byte("k2"), []byte("b"), int64(1<<40), "t=-9223372036854775808,t=")
	f.Add([]byte("k"), []byte("k"), []byte("b"), int64(0), "t=1, v1=x,,=,v1")
	f.Fuzz(func(t *testing.T, secret, other, body []byte, skew int64, header string) {
		now := time.Now()
		const tol = 5 * time.Minute
		at := now.Add(time.Duration(skew%3600) * time.Second)
		signed := webhook.Sign([][]byte{other, secret}, at, body)
		err := webhook.Verify(signed, secret, body, now, tol)
		within := now.Sub(at.Truncate(time.Second)).Abs() <= tol
		if (err == nil) != within {
			t.Fatalf("signed %s ago: %v", now.Sub(at), err)
		}
		if !bytes.Equal(other, secret) {
			if err := webhook.Verify(webhook.Sign([][]byte{other}, at, body), secret, body, now, tol); err == nil {
				t.Fatal("verified with a secret it was not signed with")
			}
		}
		if err := webhook.Verify(signed, secret, append(bytes.Clone(body), 'x'), now, tol); err == nil {
			t.Fatal("verified another body")
		}

		// An arbitrary header, its t as written signed or not.
		err = webhook.Verify(header, secret, body, now, tol)
		if err == nil && !strings.Contains(header, "v1="+hmacHex(secret, lastT(header), body)) {
			t.Fatalf("%q accepted without the body's HMAC", header)
		}
		r := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(body))
		r.Header[webhook.SignatureHeader] = []string{header}
		if _, rerr := verify(r, secret); (rerr == nil) != (err == nil) {
			t.Fatalf("%q: the README's receiver says %v, webhook.Verify %v", header, rerr, err)
		}
	})
}

// lastT is the header's t: its last t= part, its only one in a header
// Verify accepts.
func lastT(header string) string {
	var ts string
	for _, part := range strings.Split(header, ",") {
		if v, ok := strings.CutPrefix(part, "t="); ok {
			ts = v
		}
	}
	return ts
}

func hmacHex(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}
