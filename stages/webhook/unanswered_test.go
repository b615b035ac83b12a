package webhook_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/stages/webhook"
)

// A POST that fails for a reason the error alone does not explain is
// logged with what to do: a receiver's certificate this process does not
// trust (SSL_CERT_FILE), a receiver slower than --timeout, and a redirect,
// which is not followed (where it goes, shown without its path). The advice
// names the flags as the operator has them (--webhook-* under all).
func TestUnansweredDeliverySaysWhatToDo(t *testing.T) {
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	})
	redirect := func(to string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusPermanentRedirect) })
	}
	tests := []struct {
		name    string
		tls     bool
		handler http.Handler
		prefix  string
		want    []string
	}{
		{"untrusted certificate", true, http.NotFoundHandler(), "",
			[]string{"certificate signed by unknown authority", "give the CA that signed it (PEM) in SSL_CERT_FILE"}},
		{"slower than timeout", false, slow, "",
			[]string{"Client.Timeout exceeded", "the receiver answered nothing within --timeout 200ms; have it answer 2xx before it processes the events, or raise --timeout"}},
		{"slower than timeout under all", false, slow, "webhook-", []string{"within --webhook-timeout 200ms", "raise --webhook-timeout"}},
		{"redirect to https", false, redirect("https://hooks.example.com/hook?key=s3cret"), "",
			[]string{"answered 308 Permanent Redirect: the receiver redirects to https://hooks.example.com (the same path); redirects are not followed", "give that URL as --url"}},
		{"redirect elsewhere", false, redirect("/other/s3cret"), "webhook-",
			[]string{"the receiver redirects to http://127.0.0.1:", "/…(sha256:", "give that URL as --webhook-url"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each a runner, a receiver and keys of its own, mostly waiting for one failed POST
			f := newFixture(t)
			// Short for the slow receiver only: a TLS handshake under
			// -race on a loaded box can take longer than it.
			timeout := 5 * time.Second
			if strings.Contains(tt.name, "slower") {
				timeout = 200 * time.Millisecond
			}
			srv := httptest.NewUnstartedServer(tt.handler)
			if tt.tls {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			t.Cleanup(srv.Close)
			got := f.failureLogged(t, webhook.Config{URL: srv.URL + "/hook?key=s3cret", Secrets: [][]byte{[]byte("secret-0123456789abcdef")},
				Attempts: 1, Timeout: timeout, FlagPrefix: tt.prefix})
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("logged %s\nwant %q in it", got, w)
				}
			}
			if strings.Contains(got, "s3cret") {
				t.Errorf("the log shows the URL's secret: %s", got)
			}
		})
	}
}
