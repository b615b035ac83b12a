package fcm

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// An HTTP-date Retry-After is read against the answer's own Date, not this
// host's clock: with Google's clock an hour off from this host's, a pause
// of 5 s was read as an hour and 5 s (Google ahead) or as none (behind).
// Both ways an answer is read: an error the SDK decoded (the 429s, and the
// 503 whose pause the SDK, reading it by this host's clock, finds over its
// retry cap) and a status whose retry the transport cut off (the 503 the SDK
// would retry at once).
func TestRetryAfterDateIsReadByTheAnswersDate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		skew   time.Duration // Google's clock minus this host's
	}{
		{"429 decoded, Google an hour ahead", http.StatusTooManyRequests,
			`{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"QUOTA_EXCEEDED"}]}}`, time.Hour},
		{"429 decoded, Google an hour behind", http.StatusTooManyRequests,
			`{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"QUOTA_EXCEEDED"}]}}`, -time.Hour},
		{"503 decoded, Google an hour ahead", http.StatusServiceUnavailable, `{"error":{"code":503,"status":"UNAVAILABLE"}}`, time.Hour},
		{"503 retry cut off, Google an hour behind", http.StatusServiceUnavailable, `{"error":{"code":503,"status":"UNAVAILABLE"}}`, -time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				date := time.Now().Add(tt.skew).UTC()
				w.Header().Set("Date", date.Format(http.TimeFormat))
				w.Header().Set("Retry-After", date.Add(5*time.Second).Format(http.TimeFormat))
				w.Header().Set("Content-Type", "application/json; charset=UTF-8")
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			t.Cleanup(srv.Close)
			s, err := New(context.Background(), Config{Project: "test-project", Endpoint: srv.URL + "/v1"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)

			r := s.Send(context.Background(), push.Notification{Token: token(0), Platform: push.Android, Title: "t", Body: "b", Expires: time.Now().Add(time.Hour)})
			if r.Outcome != push.Retry || r.Status != tt.status || r.RetryAfter != 5*time.Second {
				t.Fatalf("Send = %+v, want retry %d with Retry-After 5s", r, tt.status)
			}
		})
	}
}
