package fcm

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/auth"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// The INVALID_ARGUMENT bodies are the shapes FCM is reported to send
// (firebase-admin-java#1064, firebase-admin-python#187 and #805) plus a
// payload error.
func TestInvalidArgumentTellsTokenFromPayload(t *testing.T) {
	const fcmErr = `{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"}`
	tests := []struct {
		name      string
		give      string
		want      push.Outcome
		wantFatal bool
	}{
		{"token named in the message",
			`{"error":{"code":400,"message":"The registration token is not a valid FCM registration token","status":"INVALID_ARGUMENT","details":[` + fcmErr + `]}}`,
			push.Invalid, false},
		{"token field violation",
			`{"error":{"code":400,"message":"Request contains an invalid argument.","status":"INVALID_ARGUMENT","details":[` + fcmErr + `,{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token","description":"Invalid registration token"}]}]}}`,
			push.Invalid, false},
		{"payload field violation",
			`{"error":{"code":400,"message":"Invalid value at 'message.android.ttl'","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.android.ttl","description":"Invalid value"}]}]}}`,
			push.Failed, true},
		{"no hint either way",
			`{"error":{"code":400,"message":"Request contains an invalid argument.","status":"INVALID_ARGUMENT","details":[` + fcmErr + `]}}`,
			push.Failed, false},
		{"not JSON", `<html>bad request</html>`, push.Failed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ge := parseGoogleError(&http.Response{Body: io.NopCloser(strings.NewReader(tt.give))})
			got, fatal := ge.invalidArgument()
			if got != tt.want || fatal != tt.wantFatal {
				t.Errorf("invalidArgument() = %v, fatal %v; want %v, fatal %v", got, fatal, tt.want, tt.wantFatal)
			}
		})
	}
}

func TestReasonPrefersErrorCode(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{`{"error":{"status":"NOT_FOUND","details":[{"@type":"x","errorCode":"UNREGISTERED"}]}}`, "UNREGISTERED"},
		{`{"error":{"status":"PERMISSION_DENIED"}}`, "PERMISSION_DENIED"},
		{``, "Forbidden"},
	}
	for _, tt := range tests {
		ge := parseGoogleError(&http.Response{Body: io.NopCloser(strings.NewReader(tt.give))})
		if got := ge.reason(http.StatusForbidden); got != tt.want {
			t.Errorf("reason(%s) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

// TestClassifyWithoutAnAnswer covers the paths where the SDK returned no
// FCM error: what oneShotTransport recorded decides.
func TestClassifyWithoutAnAnswer(t *testing.T) {
	retryAfter := http.Header{"Retry-After": []string{"5"}}
	refused := &auth.Error{Response: &http.Response{StatusCode: http.StatusBadRequest}, Err: errors.New("invalid_grant")}
	tests := []struct {
		name   string
		err    error
		a      attempt
		want   push.Outcome
		status int
		after  time.Duration
		reason string
		fatal  bool
	}{
		{"sent", nil, attempt{done: true, status: 200}, push.Sent, 200, 0, "", false},
		{"503 the SDK wanted to retry", context.Canceled, attempt{done: true, status: 503, header: retryAfter},
			push.Retry, 503, 5 * time.Second, "Service Unavailable", false},
		{"429 the SDK wanted to retry", context.Canceled, attempt{done: true, status: 429, header: retryAfter},
			push.Retry, 429, 5 * time.Second, "Too Many Requests", false},
		{"network error", context.Canceled, attempt{done: true, err: &url.Error{Op: "Post", URL: "https://x/v1", Err: errors.New("connection reset")}},
			push.Retry, 0, 0, "network: connection reset", false},
		{"credentials refused", context.Canceled, attempt{done: true, err: refused},
			push.Failed, 0, 0, "credentials refused", true},
		{"accepted, answer unreadable", errors.New("error while parsing response"), attempt{done: true, status: 200},
			push.Sent, 200, 0, "", false},
		{"redirect the SDK takes for success", nil, attempt{done: true, status: 303},
			push.Failed, 303, 0, "See Other", false},
		{"accepted with an empty 2xx", errors.New("error while parsing response"), attempt{done: true, status: 205},
			push.Sent, 205, 0, "", false},
		{"caller gave up first", context.Canceled, attempt{}, push.Retry, 0, 0, "canceled", false},
		{"refused by the SDK", errors.New("ttl duration must not be negative"), attempt{},
			push.Failed, 0, 0, "invalid message: ttl", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.a
			got := classify(tt.err, &a)
			if got.Outcome != tt.want || got.Status != tt.status || got.RetryAfter != tt.after ||
				!strings.HasPrefix(got.Reason, tt.reason) || got.CampaignFatal != tt.fatal ||
				got.Throttled != (tt.status == http.StatusTooManyRequests) { // the project's rate, for the limiter
				t.Errorf("classify = %+v, want %v status %d retry after %v reason %q... fatal %v, throttled on 429 only",
					got, tt.want, tt.status, tt.after, tt.reason, tt.fatal)
			}
		})
	}
}
