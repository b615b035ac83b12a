package apns

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/sideshow/apns2"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

func TestClassify(t *testing.T) {
	since := time.Unix(1_458_114_061, 0)
	tests := []struct {
		give   apns2.Response
		want   push.Outcome
		fatal  bool
		reason string
	}{
		{apns2.Response{StatusCode: 200}, push.Sent, false, ""},
		{apns2.Response{StatusCode: 410, Reason: apns2.ReasonUnregistered, Timestamp: apns2.Time{Time: since}}, push.Invalid, false, "Unregistered"},
		{apns2.Response{StatusCode: 410, Reason: apns2.ReasonExpiredToken}, push.Invalid, false, "ExpiredToken"},
		{apns2.Response{StatusCode: 400, Reason: apns2.ReasonBadDeviceToken}, push.Invalid, false, "BadDeviceToken"},
		{apns2.Response{StatusCode: 400, Reason: apns2.ReasonMissingDeviceToken}, push.Invalid, false, "MissingDeviceToken"},
		{apns2.Response{StatusCode: 400, Reason: apns2.ReasonDeviceTokenNotForTopic}, push.Failed, false, "DeviceTokenNotForTopic"},
		{apns2.Response{StatusCode: 400, Reason: apns2.ReasonIdleTimeout}, push.Retry, false, "IdleTimeout"},
		{apns2.Response{StatusCode: 400, Reason: apns2.ReasonBadTopic}, push.Failed, true, "BadTopic"},
		{apns2.Response{StatusCode: 400, Reason: apns2.ReasonMissingTopic}, push.Failed, true, "MissingTopic"},
		{apns2.Response{StatusCode: 400, Reason: apns2.ReasonTopicDisallowed}, push.Failed, true, "TopicDisallowed"},
		{apns2.Response{StatusCode: 400, Reason: apns2.ReasonBadCollapseID}, push.Failed, true, "BadCollapseId"},
		{apns2.Response{StatusCode: 400, Reason: apns2.ReasonPayloadEmpty}, push.Failed, true, "PayloadEmpty"},
		{apns2.Response{StatusCode: 400, Reason: apns2.ReasonBadPriority}, push.Failed, true, "BadPriority"},
		{apns2.Response{StatusCode: 403, Reason: apns2.ReasonInvalidProviderToken}, push.Failed, true, "InvalidProviderToken"},
		{apns2.Response{StatusCode: 403, Reason: apns2.ReasonExpiredProviderToken}, push.Failed, true, "ExpiredProviderToken"},
		{apns2.Response{StatusCode: 403, Reason: apns2.ReasonBadCertificateEnvironment}, push.Failed, true, "BadCertificateEnvironment"},
		{apns2.Response{StatusCode: 404, Reason: apns2.ReasonBadPath}, push.Failed, true, "BadPath"},
		{apns2.Response{StatusCode: 405, Reason: apns2.ReasonMethodNotAllowed}, push.Failed, true, "MethodNotAllowed"},
		{apns2.Response{StatusCode: 413, Reason: apns2.ReasonPayloadTooLarge}, push.Failed, true, "PayloadTooLarge"},
		{apns2.Response{StatusCode: 429, Reason: apns2.ReasonTooManyRequests}, push.Retry, false, "TooManyRequests"},
		{apns2.Response{StatusCode: 429, Reason: apns2.ReasonTooManyProviderTokenUpdates}, push.Retry, false, "TooManyProviderTokenUpdates"},
		{apns2.Response{StatusCode: 500, Reason: apns2.ReasonInternalServerError}, push.Retry, false, "InternalServerError"},
		{apns2.Response{StatusCode: 503, Reason: apns2.ReasonServiceUnavailable}, push.Retry, false, "ServiceUnavailable"},
		{apns2.Response{StatusCode: 503, Reason: apns2.ReasonShutdown}, push.Retry, false, "Shutdown"},
		{apns2.Response{StatusCode: 502}, push.Retry, false, "Bad Gateway"},
		{apns2.Response{StatusCode: 418}, push.Failed, false, "I'm a teapot"},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			resp := tt.give
			got := classify(&resp, nil, 0)
			// No APNs answer is about the app's rate: its 429s are per
			// device token.
			if got.Outcome != tt.want || got.CampaignFatal != tt.fatal || got.Status != tt.give.StatusCode || got.Reason != tt.reason || got.Throttled {
				t.Errorf("classify(%d %s) = %+v, want %v fatal=%v reason %q", tt.give.StatusCode, tt.give.Reason, got, tt.want, tt.fatal, tt.reason)
			}
		})
	}

	r := classify(&apns2.Response{StatusCode: 410, Reason: "Unregistered", Timestamp: apns2.Time{Time: since}}, nil, 0)
	if !r.InvalidSince.Equal(since) {
		t.Errorf("InvalidSince = %v, want %v", r.InvalidSince, since)
	}
	r = classify(&apns2.Response{StatusCode: 503, Reason: "ServiceUnavailable"}, nil, 7*time.Second)
	if r.RetryAfter != 7*time.Second {
		t.Errorf("RetryAfter = %v, want 7s", r.RetryAfter)
	}
}

func TestClassifyTransportErrors(t *testing.T) {
	tok := "0123abcd"
	tests := []struct {
		give error
		want string
	}{
		{&url.Error{Op: "Post", URL: "https://h/3/device/" + tok, Err: errors.New("connection refused")}, "network: connection refused"},
		{&url.Error{Op: "Post", URL: "https://h/3/device/" + tok, Err: context.DeadlineExceeded}, "timeout: context deadline exceeded"},
		{context.Canceled, "canceled"},
	}
	for _, tt := range tests {
		got := classify(nil, tt.give, 0)
		if got.Outcome != push.Retry || got.Status != 0 || got.Reason != tt.want {
			t.Errorf("classify(%v) = %+v, want retry %q", tt.give, got, tt.want)
		}
	}
}
