package webhook_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/stages/webhook"
)

// A failed delivery's log quotes what the receiver answered, on one line
// and clipped, and never the URL's credentials, path or query a receiver
// echoing its request puts back in it: the log said "answered 500 Internal
// Server Error" and no more, though the receiver had said why.
func TestFailedDeliverySaysWhatTheReceiverSaid(t *testing.T) {
	long := strings.Repeat("x", 2000) + "END"
	tests := []struct {
		name   string
		status int
		body   string
		want   string
		not    []string
	}{
		{"one line", http.StatusInternalServerError, "database down\r\n\tretry later\n",
			`answered 500 Internal Server Error; the receiver said: database down retry later"`, nil},
		{"after the hint", http.StatusUnauthorized, "unknown signature\n",
			"(t= is this host's time); the receiver said: unknown signature\"", nil},
		{"echoing the URL", http.StatusBadRequest, "bad request to /hook/T0B0tok3n?key=s3cretkey as usr1:pa55word",
			"answered 400 Bad Request; the receiver said: bad request to … as …:…\"", []string{"s3cretkey", "pa55word", "T0B0tok3n", "usr1"}},
		{"clipped", http.StatusServiceUnavailable, long,
			"; the receiver said: " + strings.Repeat("x", 159) + "…\"", []string{"END", strings.Repeat("x", 160)}},
		{"empty", http.StatusBadGateway, "", `answered 502 Bad Gateway"`, []string{"the receiver said"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each a runner, a receiver and keys of its own, mostly waiting for one failed POST
			f := newFixture(t)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			t.Cleanup(srv.Close)
			u := strings.Replace(srv.URL, "http://", "http://usr1:pa55word@", 1) + "/hook/T0B0tok3n?key=s3cretkey"
			got := f.failureLogged(t, webhook.Config{URL: u, Secrets: [][]byte{[]byte("secret-0123456789abcdef")},
				Attempts: 1, RetryBase: 10 * time.Millisecond})
			if !strings.Contains(got, tt.want) {
				t.Errorf("logged %s\nwant %q in it", got, tt.want)
			}
			for _, not := range tt.not {
				if strings.Contains(got, not) {
					t.Errorf("logged %s\nwant no %q in it", got, not)
				}
			}
		})
	}
}
