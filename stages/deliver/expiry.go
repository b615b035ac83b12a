package deliver

import "time"

// A notification is worth sending until its campaign's start and its
// ttl_seconds (campaign.ExpiresAt). A capped campaign sent over hours, a
// backlog, a provider outage's retries or a late `dlq retry` can reach a
// device after that, and the provider would then hold the notification for
// a whole TTL more: "your ride is here" an hour after the ride left. So
// deliver sends nothing past the expiry. Those devices fail with
// ReasonExpired (counted, with a result event each), their tokens
// untouched, and the campaign still ends done. What reaches the provider
// carries the expiry itself (push.Notification.Expires).
const ReasonExpired = "expired"

// expired reports whether c's notification is past its expiry at now.
func (c *campaign) expired(now time.Time) bool {
	return !c.expires.IsZero() && !now.Before(c.expires)
}

// skip is a reason devices of a campaign are failed unsent, for the round
// to mark them in one call per campaign and reason.
type skip struct {
	c      *campaign
	reason string
}
