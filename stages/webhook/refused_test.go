package webhook_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/stages/webhook"
)

// A receiver refusing the POSTs (401, 403: most often it checks another
// secret; 413: too large a batch) is logged with what to check, since
// retrying a refusal only fills the DLQ; other answers are logged as they
// were. One attempt reads "1
// attempt", not "1 attempts".
func TestRefusedDeliverySaysWhatToCheck(t *testing.T) {
	// The signature's time is this host's: a clock minutes off fails
	// every POST as a wrong secret does.
	const hint = "the receiver refused the request; check that it verifies Pushpipe-Signature with a line of --secret-file, " +
		"the credentials it wants in the URL, and that this host's clock is within its tolerance of the receiver's"
	tests := []struct {
		status   int
		attempts int
		prefix   string // Config.FlagPrefix: "webhook-" under pushpipe all
		want     string
		hint     bool
	}{
		{http.StatusUnauthorized, 1, "", "1 attempt, last: answered 401 Unauthorized: ", true},
		{http.StatusForbidden, 2, "", "2 attempts, last: answered 403 Forbidden: ", true},
		{http.StatusRequestEntityTooLarge, 1, "", "1 attempt, last: answered 413 Request Entity Too Large: the receiver takes smaller bodies; lower --batch", false},
		{http.StatusRequestEntityTooLarge, 1, "webhook-", "1 attempt, last: answered 413 Request Entity Too Large: the receiver takes smaller bodies; lower --webhook-batch", false},
		{http.StatusInternalServerError, 1, "", "1 attempt, last: answered 500 Internal Server Error", false},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status)+tt.prefix, func(t *testing.T) {
			t.Parallel() // each a runner, a receiver and keys of its own, mostly waiting for one failed POST
			f := newFixture(t)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "no", tt.status)
			}))
			t.Cleanup(srv.Close)
			got := f.failureLogged(t, webhook.Config{URL: srv.URL + "/hook", Secrets: [][]byte{[]byte("secret-0123456789abcdef")},
				Attempts: tt.attempts, RetryBase: 10 * time.Millisecond, FlagPrefix: tt.prefix})
			if !strings.Contains(got, tt.want) || strings.Contains(got, hint) != tt.hint {
				t.Errorf("logged %s\nwant %q, and the hint: %v", got, tt.want, tt.hint)
			}
		})
	}
}
