package campaign

import (
	"strings"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
)

// startMessage is the campaigns entry that starts campaign id: appended at
// once, or scheduled for send_at (the same entry, so scheduling is
// idempotent and a cancel can take it back).
func startMessage(keys pipeline.Keys, id string) pipeline.Message {
	return pipeline.Message{
		Stream: keys.Stream(pipeline.StreamCampaigns, keys.HashPartition(id)),
		Fields: []string{pipeline.FieldCampaign, id},
	}
}

// ParseSendAt reads a send_at: an RFC 3339 time, whose "T" and "Z" may be
// lower case, as RFC 3339 (5.6) allows and Go's layout does not: the API
// refused "2026-12-06t07:30:00z" as "must be an RFC 3339 time".
func ParseSendAt(s string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, strings.ToUpper(s))
}

// normalizeLifecycle validates and defaults the lifecycle fields: priority,
// rate and send_at (at most MaxSchedule after now; a past one starts now).
func (c *Campaign) normalizeLifecycle(now time.Time) error {
	switch c.Priority {
	case "":
		c.Priority = PriorityNormal
	case PriorityNormal, PriorityHigh:
	default:
		return invalid(`priority: must be "normal" or "high", got %q`, c.Priority)
	}
	// Every way in (the API, the console, pushpipe send) meets this
	// bound: the CLI alone once stored what the API then refused to
	// compare, and past the column's range PostgreSQL's encode error.
	if c.RatePerSecond < 0 || c.RatePerSecond > MaxRatePerSecond {
		return invalid("rate_per_second: must be a whole number of sends per second from 1 to %d, got %d (leave it out for no cap of its own)",
			MaxRatePerSecond, c.RatePerSecond)
	}
	if c.SendAt.After(now.Add(MaxSchedule)) {
		return invalid("send_at: at most 90 days ahead (until %s), got %s",
			now.Add(MaxSchedule).UTC().Format(time.RFC3339), c.SendAt.UTC().Format(time.RFC3339))
	}
	if !c.SendAt.IsZero() {
		// PostgreSQL keeps microseconds: a retry must compare equal.
		c.SendAt = c.SendAt.Truncate(time.Microsecond)
	}
	return nil
}
