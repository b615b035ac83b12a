package fcm

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"cloud.google.com/go/auth"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"

	"github.com/pushpipe/pushpipe/pipeline/httpx"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// classify turns the SDK's answer to one Send, and the request as the
// transport saw it, into what the deliver stage must do. Only an answer
// about this token (UNREGISTERED, INVALID_ARGUMENT about the token) deletes
// it; an answer every token would get (auth, payload) fails the campaign
// and keeps the tokens; quota, 5xx and the network are retried.
func classify(err error, a *attempt) push.Result {
	if err == nil {
		if !a.done {
			return push.Result{Outcome: push.Sent, Status: http.StatusOK}
		}
		if a.status < 200 || a.status >= 300 {
			// firebase counts 300-303 as success too; nothing was accepted.
			return statusOnly(a.status, a.header)
		}
		return push.Result{Outcome: push.Sent, Status: a.status}
	}
	if resp := errorutils.HTTPResponse(err); resp != nil {
		return classifyAnswer(err, resp)
	}
	switch {
	case a.done && a.err != nil:
		return transportFailure(a.err)
	case a.done && a.status >= 200 && a.status < 300:
		// Accepted, but the SDK could not read the answer: sending again
		// would duplicate the notification.
		return push.Result{Outcome: push.Sent, Status: a.status}
	case a.done:
		// The SDK wanted to retry this answer (a 503) and oneShotTransport
		// stopped it.
		return statusOnly(a.status, a.header)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return push.Result{Outcome: push.Retry, Reason: push.TransportReason(err)}
	case isTransportError(err):
		return push.Result{Outcome: push.Retry, Reason: push.TransportReason(err)}
	default:
		// No request was made: the SDK refused the message (bad TTL,
		// priority...), which every token of the campaign would share.
		return push.Result{Outcome: push.Failed, CampaignFatal: true, Reason: "invalid message: " + clip(err.Error())}
	}
}

// classifyAnswer classifies an FCM error answer; err is the SDK's error
// for it, which its messaging.IsXxx helpers understand.
func classifyAnswer(err error, resp *http.Response) push.Result {
	ge := parseGoogleError(resp)
	// An HTTP-date Retry-After is read against the answer's own Date, not
	// this host's clock, which may be off from Google's.
	r := push.Result{
		Status:     resp.StatusCode,
		Reason:     ge.reason(resp.StatusCode),
		RetryAfter: httpx.RetryAfter(resp.Header, time.Now()),
	}
	// Only a 4xx answer is about the request; an error code in any other
	// answer never deletes a token.
	s := resp.StatusCode
	clientError := s >= 400 && s < 500
	switch {
	case messaging.IsUnregistered(err) && clientError:
		r.Outcome = push.Invalid
	case messaging.IsSenderIDMismatch(err):
		// A token of another project, or credentials for the wrong
		// project: in the second case every token says so, so never
		// delete on it.
		r.Outcome = push.Failed
	case messaging.IsThirdPartyAuthError(err):
		// The project's APNs key or certificate is broken.
		r.Outcome, r.CampaignFatal = push.Failed, true
		r.Reason += ": " + clip(ge.Error.Message)
	case messaging.IsQuotaExceeded(err), messaging.IsUnavailable(err), messaging.IsInternal(err),
		s == http.StatusTooManyRequests, s >= 500:
		r.Outcome = push.Retry
	case (messaging.IsInvalidArgument(err) || s == http.StatusBadRequest) && clientError:
		r.Outcome, r.CampaignFatal = ge.invalidArgument()
		r.Reason += ": " + clip(ge.Error.Message)
	case s == http.StatusUnauthorized, s == http.StatusForbidden:
		// Credentials or permissions: the same for every token.
		r.Outcome, r.CampaignFatal = push.Failed, true
		r.Reason += ": " + clip(ge.Error.Message)
	default:
		r.Outcome = push.Failed
	}
	// QUOTA_EXCEEDED is mostly the project's quota (it may be one device's
	// or topic's rate, which the answer does not tell apart): the limiter
	// backs every process off for it.
	r.Throttled = r.Outcome == push.Retry && (messaging.IsQuotaExceeded(err) || s == http.StatusTooManyRequests)
	return r
}

// googleError is the body of a Google API error.
type googleError struct {
	Error struct {
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type            string `json:"@type"`
			ErrorCode       string `json:"errorCode"`
			FieldViolations []struct {
				Field       string `json:"field"`
				Description string `json:"description"`
			} `json:"fieldViolations"`
		} `json:"details"`
	} `json:"error"`
}

func parseGoogleError(resp *http.Response) googleError {
	var ge googleError
	if resp.Body != nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20)) // FCM errors are a few hundred bytes
		json.Unmarshal(b, &ge)                               // an unreadable body leaves the HTTP status to decide
	}
	return ge
}

// reason is the most specific code: the FcmError errorCode, else the
// canonical status, else the HTTP status text.
func (ge googleError) reason(status int) string {
	for _, d := range ge.Error.Details {
		if d.ErrorCode != "" {
			return d.ErrorCode
		}
	}
	if ge.Error.Status != "" {
		return ge.Error.Status
	}
	return http.StatusText(status)
}

// invalidArgument tells a bad token from a bad payload. FCM answers both
// with INVALID_ARGUMENT: a bad token names it ("The registration token is
// not a valid FCM registration token", or a field violation on
// message.token); a bad payload carries a google.rpc.BadRequest violation on
// another field (message.data, message.android.ttl, ...). Anything else is
// failed without deleting the token, because deleting on a payload error
// would wipe every token of the campaign.
func (ge googleError) invalidArgument() (push.Outcome, bool) {
	if strings.Contains(strings.ToLower(ge.Error.Message), "registration token") {
		return push.Invalid, false
	}
	payload := false
	for _, d := range ge.Error.Details {
		for _, v := range d.FieldViolations {
			if v.Field == "message.token" || strings.Contains(strings.ToLower(v.Description), "registration token") {
				return push.Invalid, false
			}
			payload = true
		}
	}
	if payload {
		return push.Failed, true
	}
	return push.Failed, false
}

// transportFailure classifies a request that got no FCM answer. The token
// endpoint refusing our credentials (invalid_grant for a revoked key, say)
// is fatal; everything else on the way is retried.
func transportFailure(err error) push.Result {
	var ae *auth.Error
	if errors.As(err, &ae) && ae.Response != nil && ae.Response.StatusCode >= 400 && ae.Response.StatusCode < 500 {
		return push.Result{Outcome: push.Failed, CampaignFatal: true, Reason: "credentials refused: " + clip(ae.Error())}
	}
	return push.Result{Outcome: push.Retry, Reason: push.TransportReason(err)}
}

// statusOnly classifies an answer the SDK never turned into an error.
func statusOnly(status int, h http.Header) push.Result {
	r := push.Result{Status: status, Reason: http.StatusText(status), RetryAfter: httpx.RetryAfter(h, time.Now())}
	if status == http.StatusTooManyRequests || status >= 500 {
		r.Outcome = push.Retry
		r.Throttled = status == http.StatusTooManyRequests
	} else {
		r.Outcome = push.Failed
	}
	return r
}

func isTransportError(err error) bool {
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne)
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200]
	}
	return s
}
