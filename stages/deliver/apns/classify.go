package apns

import (
	"net/http"
	"time"

	"github.com/sideshow/apns2"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// classify turns one APNs answer (or transport error) into what the deliver
// stage must do. The rule of thumb: only an answer about this token
// (410, BadDeviceToken) deletes it; an answer every token of the campaign
// would get (auth, topic, payload) fails the campaign and keeps the tokens;
// 429, 5xx and the network are retried.
func classify(resp *apns2.Response, err error, retryAfter time.Duration) push.Result {
	if err != nil {
		return push.Result{Outcome: push.Retry, Reason: push.TransportReason(err)}
	}
	r := push.Result{Status: resp.StatusCode, Reason: resp.Reason, RetryAfter: retryAfter}
	if r.Reason == "" && r.Status != http.StatusOK {
		r.Reason = http.StatusText(r.Status)
	}
	switch s := resp.StatusCode; {
	case s == http.StatusOK:
		r.Outcome = push.Sent
	case s == http.StatusGone: // Unregistered, ExpiredToken
		r.Outcome = push.Invalid
		r.InvalidSince = resp.Timestamp.Time
	case s == http.StatusBadRequest:
		classifyBadRequest(&r)
	case s == http.StatusTooManyRequests, s >= 500:
		// 429 TooManyRequests is per device token, TooManyProviderTokenUpdates
		// per connection; both pass with time. Neither is the app's rate
		// (not Throttled): slowing every send for one busy device would
		// not help it.
		r.Outcome = push.Retry
	case s == http.StatusForbidden, // provider token or certificate
		s == http.StatusNotFound, s == http.StatusMethodNotAllowed, // wrong host or path
		s == http.StatusRequestEntityTooLarge: // payload
		r.Outcome = push.Failed
		r.CampaignFatal = true
	default:
		r.Outcome = push.Failed
	}
	return r
}

func classifyBadRequest(r *push.Result) {
	switch r.Reason {
	case apns2.ReasonBadDeviceToken, apns2.ReasonMissingDeviceToken:
		r.Outcome = push.Invalid
	case apns2.ReasonDeviceTokenNotForTopic:
		// A stray token of another app, or our topic is wrong: in the
		// second case every token says so, so never delete on it.
		r.Outcome = push.Failed
	case apns2.ReasonIdleTimeout:
		r.Outcome = push.Retry
	default:
		// BadTopic, MissingTopic, TopicDisallowed, BadCollapseId,
		// BadExpirationDate, BadPriority, InvalidPushType, PayloadEmpty,
		// BadMessageId, DuplicateHeaders: the request is wrong for everyone.
		r.Outcome = push.Failed
		r.CampaignFatal = true
	}
}
