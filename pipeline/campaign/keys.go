package campaign

import "time"

// The fan-out's own Redis state of a campaign, beside the counters listed in
// pipeline/fields.go.
const (
	// HashExpiresMs is a field of keys.Campaign(id): unix ms when the
	// campaign expires. Create writes it before the campaign is emitted, so
	// every stage finds it; dedupe reads it to expire its marks.
	HashExpiresMs = "expires_ms"
	// HashRatePerSecond is a field of keys.Campaign(id): the campaign's
	// own cap as the record last said (SetRate), 0 for none. Create
	// writes it with HashExpiresMs; deliver follows it (Rates), and a
	// progress read, or deliver's watcher within recordPoll (Rates.DB),
	// writes it again from the record when Redis lost it.
	HashRatePerSecond = "rate_per_second"
)

// How long Redis keeps a campaign's state after the campaign expired. Marks
// are the bulk of it and are useless once nothing may be sent; counters are
// small and status still wants to show them.
const (
	MarkMargin   = time.Hour
	KeepCounters = 7 * 24 * time.Hour
	// KeepMessageCounters is KeepCounters for a direct message. A chat
	// app sends millions a day, each leaving its counters (~300 B of Redis
	// in two hashes): kept a week past a day's TTL, 200 messages/s held
	// 42 GB of Redis in counters nobody reads; a day past the expiry
	// holds a fifth of that, and the message's status for a day.
	KeepMessageCounters = 24 * time.Hour
)

// MarksExpireMs is when the dedupe marks of a campaign expiring at
// expiresMs (unix ms) are dropped.
func MarksExpireMs(expiresMs int64) int64 { return expiresMs + MarkMargin.Milliseconds() }

// CountersExpireMs is when a campaign's counters and bookkeeping are dropped.
func CountersExpireMs(expiresMs int64) int64 { return expiresMs + KeepCounters.Milliseconds() }

// MessageCountersExpireMs is CountersExpireMs for a direct message.
func MessageCountersExpireMs(expiresMs int64) int64 {
	return expiresMs + KeepMessageCounters.Milliseconds()
}
