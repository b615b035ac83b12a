package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// /readyz names each part that is not ready and its state, through
// wrapping and joins, and nothing of any error's text: an error that is not
// a NotReady (a check written without one) shows as "not ready" alone.
func TestReadyzText(t *testing.T) {
	refused := errors.New("dial tcp 10.0.3.7:6379: connect: connection refused")
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"ready", nil, "ready\n"},
		{"one part", &NotReady{Part: "redis", State: "down", Err: refused}, "not ready\nredis: down\n"},
		{"joined and wrapped", errors.Join(
			fmt.Errorf("checks: %w", &NotReady{Part: "postgresql", State: "down", Err: refused}),
			&NotReady{Part: "deliver", State: "starting"}), "not ready\npostgresql: down\ndeliver: starting\n"},
		{"some other error", refused, "not ready\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := OpsHandler(NewRegistry(), func(context.Context) error { return tt.err }, zerolog.Nop())
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			body, _ := io.ReadAll(rec.Body)
			wantStatus := http.StatusOK
			if tt.err != nil {
				wantStatus = http.StatusServiceUnavailable
			}
			if rec.Code != wantStatus || string(body) != tt.want {
				t.Errorf("%d %q, want %d %q", rec.Code, body, wantStatus, tt.want)
			}
		})
	}
}

// TestCachedCheckAnswerIsAsOldAsItsQuestion: a check's answer is shared for
// a second from when it was asked, not from when it came back. Stamped on
// return, a check that took 400 ms answered "ready" for 1.4 s after Redis
// was asked, a stale window the readiness probe's 1.5 s barely covered.
func TestCachedCheckAnswerIsAsOldAsItsQuestion(t *testing.T) {
	t.Parallel()
	var asked []time.Time
	check := cachedCheck("redis", func(context.Context) error {
		asked = append(asked, time.Now())
		time.Sleep(400 * time.Millisecond)
		return nil
	})
	if err := check(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Sleep past a second from the question: each wait only lengthens it,
	// so a loaded box cannot make the new code fail.
	time.Sleep(time.Until(asked[0].Add(time.Second + 50*time.Millisecond)))
	since := time.Since(asked[0])
	if err := check(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(asked) != 2 {
		t.Errorf("%v after the first question the shared answer was still given (%d checks run), want a new check past 1s", since, len(asked))
	}
}
