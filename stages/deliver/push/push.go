// Package push holds the provider-neutral types shared by the deliver stage and
// its provider senders (apns, fcm): what to send, and what became of it.
package push

import (
	"context"
	"encoding/json"
	"time"
)

// Platform is the device platform a token belongs to.
type Platform string

// Platforms a device can register with.
const (
	IOS     Platform = "ios"
	Android Platform = "android"
)

// Notification is one provider request: one device token, already rendered
// from the campaign.
type Notification struct {
	Token    string
	Platform Platform

	// Key names the content (the campaign id): notifications with the same
	// Key differ in Token and Platform only, so a sender may render the rest
	// once and reuse it. Empty means render every time.
	Key string

	// App is the app the device belongs to: a sender that serves several
	// apps (deliver's apps) picks that app's credentials and topic by it.
	App string

	// The text, already in the device's language (Content.Render).
	Title, Subtitle, Body string
	// Data are the custom keys, each value the JSON the campaign gave:
	// APNs carries them as they are at the payload's top level, FCM as
	// strings (DataStrings), as its data holds nothing else.
	Data map[string]json.RawMessage

	// Badge sets the app icon's count (0 clears it); nil leaves it.
	Badge *int
	// Sound is a sound file of the app, or "default"; "" plays none.
	Sound string
	// Image is an https URL shown with the notification (APNs: through
	// the app's notification service extension, mutable-content).
	Image    string
	ThreadID string // groups notifications on iOS (aps.thread-id)
	// Silent is a background push: no alert, no sound, no badge; it wakes
	// the app (APNs content-available, FCM data-only).
	Silent bool

	// CollapseID is the campaign's collapse id. It becomes apns-collapse-id
	// (APNs, also in the FCM apns block) and collapse_key (FCM android), so a
	// request that is repeated after a crash shows as one notification.
	CollapseID string
	// Expires is when the notification is worthless: the campaign's start
	// and its ttl_seconds. It becomes apns-expiration as it is, and FCM's
	// android ttl as what is left of it at the send, so a campaign sent
	// over hours (a cap, a backlog, retries) does not have its last
	// devices held by the provider for a whole TTL after it. Deliver sends
	// nothing after it (ReasonExpired). Zero leaves the provider default.
	Expires time.Time
	// HighPriority selects apns-priority 10 (else 5; always 5 when Silent,
	// which Apple requires of background pushes) and FCM android priority
	// "high" (else "normal").
	HighPriority bool
	Category     string // the actions the app offers (aps.category)
}

// Outcome is what the deliver stage must do with a device after a send.
type Outcome int

// Outcomes. They start at 1 so that a zero Result is never read as "sent".
const (
	// Sent: the provider accepted the request.
	Sent Outcome = iota + 1
	// Retry: transient (429, 5xx, network, timeout); send again later,
	// after Result.RetryAfter when it is set.
	Retry
	// Invalid: the token is dead (APNs 410 Unregistered, 400 BadDeviceToken,
	// FCM UNREGISTERED, INVALID_ARGUMENT about the token); delete it.
	Invalid
	// Failed: permanent for this request, but the token must be kept
	// (auth, payload, topic or project errors). See Result.CampaignFatal.
	Failed
)

func (o Outcome) String() string {
	switch o {
	case Sent:
		return "sent"
	case Retry:
		return "retry"
	case Invalid:
		return "invalid"
	case Failed:
		return "failed"
	default:
		return "unknown"
	}
}

// Result is the classified answer of one send.
type Result struct {
	Outcome Outcome
	// Status is the provider's HTTP status; 0 when no response arrived.
	Status int
	// Reason is the provider's reason or error code (e.g. "Unregistered",
	// "QUOTA_EXCEEDED") or a short transport error. It never contains key
	// material.
	Reason string
	// RetryAfter is the provider's Retry-After, if it sent one.
	RetryAfter time.Duration
	// InvalidSince is when APNs last saw the token valid (410 timestamp);
	// a token re-registered after it must not be deleted.
	InvalidSince time.Time
	// CampaignFatal means the error is not about this device but about the
	// request every device gets (auth, payload too large, bad topic): the
	// whole campaign must fail and no token may be deleted because of it.
	CampaignFatal bool
	// Throttled means the provider refused the send for the rate of the
	// whole project or app, not of this device: every deliver process
	// lowers its cap for them (FCM's QUOTA_EXCEEDED). APNs has no such
	// answer: Apple publishes no rate limit, and its 429 is about one
	// device token, which that device's own retry backs off from.
	Throttled bool
}

// Sender sends one notification. Implementations are safe for concurrent use,
// never panic, and report transport errors as Retry rather than as an error.
type Sender interface {
	Send(ctx context.Context, n Notification) Result
}

// AppServer is a Sender that has credentials for some apps only (an apps
// file's, or the single-app flags'): deliver sends it no device of another
// app, which it would fail at once, through the rate limits.
type AppServer interface {
	Serves(app string) bool
}
