package apns

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sideshow/apns2"

	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// fuzzAnswer is what the fuzzed APNs endpoint answers next.
type fuzzAnswer struct {
	status     int
	body       []byte
	retryAfter string
}

// FuzzProviderAnswer sends one notification through the real Sender (apns2
// over HTTP/2 and TLS) to an endpoint that answers with a fuzzed status,
// Retry-After header and body, so apns2's response decoding and our
// classification see whatever a broken or hostile provider might send. The
// Sender must never panic and must classify safely: "sent" only for 200, a
// token deleted (Invalid) only on an answer about that token, never on an
// answer that fails the campaign, and a Retry-After never negative.
func FuzzProviderAnswer(f *testing.F) {
	f.Add(200, []byte(``), "")
	f.Add(410, []byte(`{"reason":"Unregistered","timestamp":1700000000000}`), "")
	f.Add(400, []byte(`{"reason":"BadDeviceToken"}`), "")
	f.Add(400, []byte(`{"reason":"DeviceTokenNotForTopic"}`), "")
	f.Add(400, []byte(`{"reason":"IdleTimeout"}`), "")
	f.Add(400, []byte(`{"reason":"BadTopic"}`), "")
	f.Add(403, []byte(`{"reason":"ExpiredProviderToken"}`), "")
	f.Add(429, []byte(`{"reason":"TooManyRequests"}`), "7")
	f.Add(503, []byte(`{"reason":"ServiceUnavailable"}`), "Wed, 21 Oct 2037 07:28:00 GMT")
	f.Add(500, []byte(`not json`), "-5")
	f.Add(410, []byte(`{"reason":"Unregistered","timestamp":-99999999999999999}`), "")
	f.Add(410, []byte(`{"timestamp":"x"}`), "")
	f.Add(429, []byte(`{"reason":"TooManyRequests"}`), "10000000000") // past time.Duration's range

	var next atomic.Pointer[fuzzAnswer]
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := next.Load()
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		w.Header().Set("apns-id", "00000000-0000-0000-0000-000000000000")
		w.WriteHeader(a.status)
		w.Write(a.body)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	f.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	s, err := New(Config{
		KeyFile: fakeprovider.WriteP8(f), KeyID: "KEYID12345", TeamID: "TEAMID1234",
		Topic: "com.example.app", Host: srv.URL, RootCAs: roots, Timeout: 5 * time.Second,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.Close)
	n := push.Notification{Token: hexToken(0), Platform: push.IOS, Title: "t", Body: "b", CollapseID: "c1"}

	f.Fuzz(func(t *testing.T, status int, body []byte, retryAfter string) {
		if status < 200 || status > 599 {
			status = 200 + abs(status)%400 // a final status net/http can write
		}
		next.Store(&fuzzAnswer{status: status, body: body, retryAfter: retryAfter})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r := s.Send(ctx, n)
		checkResult(t, r, status)
	})
}

func abs(i int) int {
	if i < 0 {
		if i == -i { // math.MinInt
			return 0
		}
		return -i
	}
	return i
}

// checkResult holds a classification to the rules of classify.
func checkResult(t *testing.T, r push.Result, status int) {
	t.Helper()
	if r.Outcome < push.Sent || r.Outcome > push.Failed {
		t.Fatalf("outcome %v", r.Outcome)
	}
	if r.RetryAfter < 0 {
		t.Fatalf("negative Retry-After %v", r.RetryAfter)
	}
	if r.Status == 0 {
		// No answer (a header the transport refused, say): retried.
		if r.Outcome != push.Retry {
			t.Fatalf("no answer but outcome %v (%s)", r.Outcome, r.Reason)
		}
		return
	}
	if r.Status != status {
		t.Fatalf("status %d reported as %d", status, r.Status)
	}
	if (r.Outcome == push.Sent) != (status == http.StatusOK) {
		t.Fatalf("status %d classified %v", status, r.Outcome)
	}
	if r.Outcome == push.Invalid {
		if r.CampaignFatal {
			t.Fatal("a token deleted on an answer that fails the whole campaign")
		}
		about := status == http.StatusGone ||
			status == http.StatusBadRequest && (r.Reason == apns2.ReasonBadDeviceToken || r.Reason == apns2.ReasonMissingDeviceToken)
		if !about {
			t.Fatalf("token deleted on %d %q", status, r.Reason)
		}
	}
	if r.Outcome == push.Retry && !(status == http.StatusTooManyRequests || status >= 500 ||
		status == http.StatusBadRequest && r.Reason == apns2.ReasonIdleTimeout) {
		t.Fatalf("retried %d %q", status, r.Reason)
	}
}
