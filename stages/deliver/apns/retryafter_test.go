package apns

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// An HTTP-date Retry-After is read against the answer's own Date, not this
// host's clock: with APNs's clock an hour off from this host's, a pause of
// 5 s was read as an hour and 5 s (APNs ahead) or as none (APNs behind).
func TestRetryAfterDateIsReadByTheAnswersDate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		reason string
		skew   time.Duration // APNs's clock minus this host's
	}{
		{"429, APNs an hour ahead", http.StatusTooManyRequests, "TooManyRequests", time.Hour},
		{"503, APNs an hour behind", http.StatusServiceUnavailable, "ServiceUnavailable", -time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				date := time.Now().Add(tt.skew).UTC()
				w.Header().Set("Date", date.Format(http.TimeFormat))
				w.Header().Set("Retry-After", date.Add(5*time.Second).Format(http.TimeFormat))
				w.Header().Set("apns-id", "00000000-0000-0000-0000-000000000000")
				w.WriteHeader(tt.status)
				w.Write([]byte(`{"reason":"` + tt.reason + `"}`))
			}))
			srv.EnableHTTP2 = true // APNs speaks nothing else
			srv.StartTLS()
			t.Cleanup(srv.Close)
			roots := x509.NewCertPool()
			roots.AddCert(srv.Certificate())
			s, err := New(Config{
				KeyFile: fakeprovider.WriteP8(t), KeyID: "KEYID12345", TeamID: "TEAMID1234",
				Topic: "com.example.app", Host: srv.URL, RootCAs: roots,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)

			r := s.Send(context.Background(), push.Notification{Token: hexToken(0), Title: "t", Body: "b"})
			if r.Outcome != push.Retry || r.Status != tt.status || r.RetryAfter != 5*time.Second {
				t.Fatalf("Send = %+v, want retry %d with Retry-After 5s", r, tt.status)
			}
		})
	}
}
