package fcm

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
)

func TestOneShotTransportAllowsOneRequestPerSend(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{Outage: time.Minute})
	hc := &http.Client{Transport: oneShotTransport{base: newBaseTransport(fake.CertPool())}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := &attempt{cancel: cancel}
	ctx = context.WithValue(ctx, attemptKey{}, a)
	post := func() (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, "POST", fake.URL()+"/v1/projects/p/messages:send", strings.NewReader(`{}`))
		return hc.Do(req)
	}

	resp, err := post()
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("context canceled before the answer was read")
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	resp.Body.Close()
	if ctx.Err() == nil || !a.done || a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
		t.Fatalf("after the answer: ctx %v, attempt %+v; want canceled and the 503 recorded", ctx.Err(), a)
	}
	if _, err := post(); !errors.Is(err, errSecondAttempt) && !errors.Is(err, context.Canceled) {
		t.Fatalf("second request: %v, want it refused", err)
	}
	if n := fake.Summary().Requests; n != 1 {
		t.Fatalf("fake saw %d requests, want 1", n)
	}
}
