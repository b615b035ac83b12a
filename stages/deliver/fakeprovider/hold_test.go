package fakeprovider

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// A held request waits unanswered until release; one whose client gives
// up meanwhile leaves no receipt (its resend would look like a duplicate);
// after release, requests are answered at once.
func TestHoldKeepsRequestsInFlight(t *testing.T) {
	s := start(t, Options{})
	c := client(s)
	release := s.Hold()
	releaseToo := s.Hold() // joins the hold on

	answered := make(chan answer, 1)
	go func() { answered <- do(t, c, "POST", s.URL()+"/3/device/aa01", apnsHeaders(""), alert) }()
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", s.URL()+"/3/device/aa02", strings.NewReader(alert))
		for k, v := range apnsHeaders("") {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		gaveUp <- err
	}()
	pipelinetest.Eventually(t, 10*time.Second, "two requests held", func() bool { return s.Held() == 2 })
	select {
	case a := <-answered:
		t.Fatalf("answered while held: %+v", a)
	case <-time.After(50 * time.Millisecond):
	}

	cancel()
	if err := <-gaveUp; err == nil {
		t.Fatal("the canceled request was answered")
	}
	pipelinetest.Eventually(t, 10*time.Second, "the canceled request no longer held", func() bool { return s.Held() == 1 })
	release()
	release()    // again: nothing
	releaseToo() // the hold it joined is over: nothing
	if a := <-answered; a.status != 200 {
		t.Fatalf("after release: %+v, want 200", a)
	}
	if a := do(t, c, "POST", s.URL()+"/3/device/aa03", apnsHeaders(""), alert); a.status != 200 {
		t.Fatalf("after release, a new request: %+v, want 200", a)
	}
	var tokens []string
	for _, r := range s.Receipts() {
		tokens = append(tokens, r.Token)
	}
	if strings.Join(tokens, ",") != "aa01,aa03" {
		t.Errorf("receipts for %v, want aa01 and aa03 (aa02's client gave up)", tokens)
	}
}
