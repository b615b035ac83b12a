package campaign

import "time"

// Report is DESIGN's progress object. Targets, Muted and
// DuplicatesSuppressed count people; Sent, Failed and InvalidTokens count
// devices. The send times are unix ms, 0 before the first send.
type Report struct {
	ID    string `json:"id"`
	State string `json:"state"`
	Counts
	// Error is why the campaign failed as a whole (deliver could not render
	// or authenticate it), if it did.
	Error string `json:"error,omitempty"`
	// RecordUnavailable is set (to RecordUnavailable) on a report read
	// from Redis alone while PostgreSQL failed (ErrPartial): the fields
	// only the record holds (created_at, send_at but a scheduled one's,
	// started_at, finished_at) are then zero or absent. RatePerSecond is
	// then the hash's (HashRatePerSecond), the one deliver paces by.
	RecordUnavailable string `json:"record_unavailable,omitempty"`

	CreatedAt time.Time  `json:"created_at"`
	SendAt    *time.Time `json:"send_at,omitempty"`
	// ExpiresAt is when its notification expires (Campaign.ExpiresAt):
	// nothing is sent after it, and devices still unsent then fail with
	// reason expired (stages/deliver/expiry.go).
	ExpiresAt  time.Time  `json:"expires_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// RatePerSecond is the campaign's own cap (0: the provider's alone);
	// SendRate the sends per second it made between its first and last
	// send (Counts.Sends); ExpectedFinishMs when, at the pace targets are
	// done (rates), its last target is done (unix ms; 0 when not running or
	// not yet known).
	RatePerSecond    int     `json:"rate_per_second,omitempty"`
	SendRate         float64 `json:"send_rate"`
	ExpectedFinishMs int64   `json:"expected_finish_ms,omitempty"`
	// StalledSinceMs is, for a splitting or running campaign that made no
	// progress (no target done, no device sent) for pipeline.DownAfter
	// while a stage with work for it did not work, or no other campaign
	// progressed and the stages holding its work did not all move other
	// work (motion.moves), when it last did (unix ms): a stage is down,
	// hung, or cut off, or every send is failing over. Such a campaign has no
	// expected finish: one counted from now moved on with the clock for as
	// long as deliver was down, while status said it was not running.
	StalledSinceMs int64 `json:"stalled_since_ms,omitempty"`
	// QueuedSinceMs is the same time for a campaign that made no progress
	// for as long while the stages with work for it worked and another
	// campaign progressed, or every stage holding its work, all ahead of
	// deliver, moved other work: its entries wait behind another
	// campaign's in deliver's stream (another campaign sends), or split and
	// resolve cut and read another first (their processes committed or
	// emitted within DownAfter: pipeline.Motions), before that one sends
	// anything. Nothing is down;
	// it waits its turn. It has no expected finish either: its own rate so
	// far says nothing of when its turn comes, which is the work ahead of
	// it, and that work is not counted per campaign.
	QueuedSinceMs int64 `json:"queued_since_ms,omitempty"`
	// Audience is, while split is still cutting a campaign that takes it
	// more than one call, its channels' subscribers counted at the start
	// (pipeline.CampaignAudience): the targets found so far are only those
	// of the ranges cut, so the bars and the expected finish go by this
	// until every range is out (Reached).
	Audience int64 `json:"audience,omitempty"`
	// Done is the targets that reached a terminal state (expected finish
	// and progress bars are computed from it), the last of them at DoneMs;
	// Pace is how many a second lately (recentPace), 0 when unknown.
	Done   int64   `json:"-"`
	DoneMs int64   `json:"-"`
	Pace   float64 `json:"-"`
	// SplitStopped is a campaign canceled before split emitted every range
	// (splitStopped): its targets are the people of the ranges cut by then,
	// not its channels' subscribers. The list and status showed them as if
	// they were the audience.
	SplitStopped bool `json:"split_stopped,omitempty"`
}

// splitStopped is whether a campaign in state, with Redis's counters l,
// was canceled while split still cut it. One canceled before its start
// (started_at, set at creation unless scheduled) counted nobody, and its
// SendAt says which start was stopped: it is not.
func splitStopped(state string, l Live, started bool) bool {
	return state == StateCanceled && l.Known && !l.SplitDone && started
}

// PastExpiry is whether, at its rate so far, the campaign would still be
// sending when it expires: what is not sent by then fails as expired. A
// capped campaign whose cap cannot reach its audience within its TTL says
// so while there is time to cancel it and send it again with a higher cap
// or a longer TTL.
func (r Report) PastExpiry() bool {
	return !Final(r.State) && r.ExpectedFinishMs > 0 && !r.ExpiresAt.IsZero() && r.ExpectedFinishMs > r.ExpiresAt.UnixMilli()
}

// Sends is how many of its devices went to the provider and ended sent or
// failed: the count of its send rate (SendRate). Devices failed unsent are
// not sends: an expired capped campaign's were failed all at once, and
// read as hundreds a second beside a cap of 20.
func (c Counts) Sends() int64 { return c.Sent + c.Failed - c.Unsent }

// Reached is how far the campaign has come, in people (Reached).
func (r Report) Reached() (reached, of int64) { return Reached(r.State, r.Counts, r.Done, r.Audience) }

// Reached is how far a campaign in state has come, in people: reached of
// of. Normally the targets done of the targets. While it is still being cut
// and split counted its audience (larger than the targets found so far),
// of is that audience. The audience counts subscriptions: a person in two
// channels twice, muted people too. Each subscription becomes a target, a
// muted person or a suppressed repeat as its range is read, so muted people
// and repeats count as reached beside the targets done. Counted against
// the targets done alone, a campaign to two channels, or one with people
// who muted it, crawled until split was done and then jumped. A direct
// message still being read by dedupe (MessageReport.Counting, state
// MessageSending) is counted the same way against the people it lists.
func Reached(state string, c Counts, done, audience int64) (reached, of int64) {
	if (state == StateSplitting || state == MessageSending) && audience > c.Targets {
		return done + c.Muted + c.DuplicatesSuppressed, audience
	}
	return done, c.Targets
}

// Counts are the campaign's counters: live from Redis, and the snapshot
// PostgreSQL keeps once the campaign ended.
type Counts struct {
	Targets              int64 `json:"targets"`
	Sent                 int64 `json:"sent"`
	Failed               int64 `json:"failed"`
	Muted                int64 `json:"muted"`
	InvalidTokens        int64 `json:"invalid_tokens"`
	DuplicatesSuppressed int64 `json:"duplicates_suppressed"`
	FirstSendMs          int64 `json:"first_send_ms"`
	LastSendMs           int64 `json:"last_send_ms"`
	// NoDevices counts targets with no device of the campaign's app (none
	// registered, or none valid): done, with nothing sent. Not in DESIGN's
	// object; why sent falls short of targets.
	NoDevices int64 `json:"no_devices"`
	// Unsent counts, of Failed, the devices failed with no provider request
	// (pipeline.StatUnsent): expired, or their campaign failed. Not in
	// DESIGN's object either; why the send rate counts fewer than failed.
	Unsent int64 `json:"unsent,omitempty"`
}
