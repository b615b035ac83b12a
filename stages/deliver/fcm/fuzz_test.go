package fcm

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// fuzzAnswer is what the fuzzed FCM endpoint answers next.
type fuzzAnswer struct {
	status      int
	body        []byte
	retryAfter  string
	contentType string
}

// FuzzProviderAnswer sends one notification through the real Sender (the
// firebase messaging client) to an endpoint that answers with a fuzzed
// status, body, Retry-After and content type, so the SDK's error decoding,
// parseGoogleError and classify all see whatever a broken or hostile
// provider might send. The Sender must never panic; it must make exactly one
// request per Send (the SDK's own retries are cut off); "sent" only for 2xx;
// a token deleted (Invalid) only on a 4xx answer, never on one that fails the
// campaign; a Retry-After never negative.
func FuzzProviderAnswer(f *testing.F) {
	const js = "application/json; charset=UTF-8"
	f.Add(200, []byte(`{"name":"projects/p/messages/1"}`), "", js)
	f.Add(200, []byte(`not json`), "", "text/plain")
	f.Add(404, []byte(`{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`), "", js)
	f.Add(400, []byte(`{"error":{"code":400,"message":"The registration token is not a valid FCM registration token","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"}]}}`), "", js)
	f.Add(400, []byte(`{"error":{"code":400,"message":"Invalid value","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.android.ttl","description":"bad"}]}]}}`), "", js)
	f.Add(403, []byte(`{"error":{"code":403,"message":"SenderId mismatch","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"SENDER_ID_MISMATCH"}]}}`), "", js)
	f.Add(401, []byte(`{"error":{"code":401,"message":"auth","status":"UNAUTHENTICATED","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"THIRD_PARTY_AUTH_ERROR"}]}}`), "", js)
	f.Add(429, []byte(`{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"QUOTA_EXCEEDED"}]}}`), "30", js)
	f.Add(503, []byte(`{"error":{"code":503,"status":"UNAVAILABLE"}}`), "Wed, 21 Oct 2037 07:28:00 GMT", js)
	f.Add(500, []byte(`<html>oops</html>`), "-1", "text/html")
	f.Add(418, []byte(`{"error":null}`), "", js)
	// Found by this target: firebase took 300-303 as success (counted as
	// sent), an error code in a non-4xx answer deleted the token, and a
	// Retry-After past time.Duration's range wrapped negative.
	f.Add(303, []byte(`{}`), "0", "0")
	f.Add(399, []byte(`{"error":{"messAge":"registrAtion token","detAils":[{"@tYpe":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"}]}}`), "", "0")
	f.Add(503, []byte(`{"error":{"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`), "", js)
	f.Add(205, []byte(`0`), "", "0")
	f.Add(429, []byte(`{}`), "10000000000", js)

	var next atomic.Pointer[fuzzAnswer]
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		a := next.Load()
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		w.Header().Set("Content-Type", a.contentType)
		w.WriteHeader(a.status)
		w.Write(a.body)
	}))
	f.Cleanup(srv.Close)
	s, err := New(context.Background(), Config{Project: "fuzz-project", Endpoint: srv.URL + "/v1", Timeout: 5 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.Close)
	n := push.Notification{Token: token(0), Platform: push.Android, Title: "t", Body: "b", CollapseID: "c1", Expires: time.Now().Add(time.Hour)}

	f.Fuzz(func(t *testing.T, status int, body []byte, retryAfter, contentType string) {
		if status < 200 || status > 599 {
			status = 200 + abs(status)%400 // a final status net/http can write
		}
		next.Store(&fuzzAnswer{status: status, body: body, retryAfter: retryAfter, contentType: contentType})
		before := requests.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r := s.Send(ctx, n)
		if got := requests.Load() - before; got != 1 {
			t.Fatalf("%d requests for one Send (answer %d)", got, status)
		}
		if r.Outcome < push.Sent || r.Outcome > push.Failed {
			t.Fatalf("outcome %v", r.Outcome)
		}
		if r.RetryAfter < 0 {
			t.Fatalf("negative Retry-After %v from %q", r.RetryAfter, retryAfter)
		}
		if r.Status == 0 {
			if r.Outcome != push.Retry {
				t.Fatalf("no answer but outcome %v (%s)", r.Outcome, r.Reason)
			}
			return
		}
		// The SDK takes any 2xx as success (and classify reports it as 200).
		success := status >= 200 && status < 300
		if r.Status != status && !(success && r.Status == http.StatusOK) {
			t.Fatalf("status %d reported as %d", status, r.Status)
		}
		if (r.Outcome == push.Sent) != success {
			t.Fatalf("status %d classified %v (%s)", status, r.Outcome, r.Reason)
		}
		if r.Outcome == push.Invalid && (r.CampaignFatal || status < 400 || status >= 500) {
			t.Fatalf("token deleted on %d %q (campaign fatal %v)", status, r.Reason, r.CampaignFatal)
		}
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
