package campaign

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

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
	// started_at, finished_at, rate_per_second) are then zero or absent.
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
// who muted it, crawled until split was done and then jumped.
func Reached(state string, c Counts, done, audience int64) (reached, of int64) {
	if state == StateSplitting && audience > c.Targets {
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

// statFields are read from every partition's keys.Stats hash, in this order.
var statFields = []string{
	pipeline.StatIn, pipeline.StatTargets, pipeline.StatMuted, pipeline.StatDups,
	pipeline.StatUsersDone, pipeline.StatSent, pipeline.StatFailed, pipeline.StatInvalid,
	pipeline.StatFirstMs, pipeline.StatLastMs, pipeline.StatDoneMs, pipeline.StatInReadings,
	pipeline.StatNoDevices, pipeline.StatDonePace, pipeline.StatUnsent,
}

// Progress reports a campaign's state and counters: ErrNotFound for an id
// that was never created, ErrIsMessage for a direct message's. It is the one reader of the campaign counters
// (status, dev and bench call it too).
//
// The state comes from PostgreSQL, the record of truth, and moves on from
// what the counters show: a splitting or running campaign is done when split
// emitted every range, resolve recorded every range, dedupe read every id
// of each range's reading on record (Live.confirmDone), and deliver brought
// every target to a terminal state. The first reader to see that records
// it (state, finished_at and the counts snapshot). Without Redis state (a flushed Redis), the report is
// PostgreSQL's: the state and the counts snapshot.
//
// While PostgreSQL is down (refusing, or silent for recordPatience), a
// campaign Redis holds is reported from Redis alone, with ErrPartial
// (RedisProgress).
func Progress(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys, id string) (Report, error) {
	var r row
	err := readRecord(ctx, func(ctx context.Context) (err error) {
		r, err = loadCampaign(ctx, db, id)
		return err
	})
	if outage(ctx, err) {
		return RedisProgress(ctx, rdb, keys, id, err)
	}
	if err != nil {
		return Report{ID: id}, err
	}
	return r.progress(ctx, rdb, db, keys)
}

// Live is what Redis holds of a campaign's progress.
type Live struct {
	Counts
	Known bool // Redis holds the campaign (its hash has expires_ms)
	// ExpiresMs is when it expires (HashExpiresMs, unix ms), 0 when not
	// Known.
	ExpiresMs int64
	Message   bool // it is a direct message (its hash counts its listed users)
	// State is splitting, running or done by the counters' sums alone;
	// Progress confirms a done (confirmDone) before it records one.
	State     string
	SplitDone bool  // split emitted every range
	Audience  int64 // pipeline.CampaignAudience, 0 when not counted
	// Cut is whether split left it unfinished after a call (it counts the
	// audience then, before it requeues the campaign): an entry of it
	// waiting in the campaigns stream's delayed set is then split's next
	// call, not a scheduled start.
	Cut        bool
	UsersDone  int64   // targets that reached a terminal state
	DoneMs     int64   // when the last of them did (pipeline.StatDoneMs), 0 before any
	Pace       float64 // targets done a second lately (recentPace), 0 when unknown
	FailReason string  // why deliver failed the campaign as a whole, if it did
	// Canceled is whether its cancel flag (Keys.Canceled) is set: the
	// stages drop its work from then on, whatever PostgreSQL's state says
	// (a cancel whose record failed after the flag was set).
	Canceled bool
	// CanceledMs is when the cancel set the flag (unix ms), 0 when not
	// canceled or the flag does not say.
	CanceledMs int64
	// Rate is its own cap as Redis has it (HashRatePerSecond), which
	// deliver follows; RateKnown is false when the hash has no such field.
	Rate      int
	RateKnown bool
	// Waits is the stages that still have work for it, in pipeline order
	// (waitsOn): what must move for it to move.
	Waits []string
	// Holds is those of Waits that hold its work now (holdsOf): the
	// stages its next progress waits on.
	Holds []string

	// resolved is the ranges' records (pipeline.RangeRecord by range id),
	// kept for confirmDone when the counters say done and dedupe counted
	// every id it read per reading. When it did not (entries read by a
	// dedupe before readings, in a rolling upgrade), the readings' counts
	// are short for good, and the sums decide, as they did then: a campaign
	// is never left running forever.
	resolved map[string]string
}

// confirmDone takes back a done the sums showed too early: dedupe's count
// of ids read includes every repeat of a range resolve emitted twice (a
// crash before its record), which can stand in for another range's entries
// not read yet; then targets still to come are not counted, and every
// counted one can be done. It reads, in one pipelined call, how many ids
// dedupe read of each range's reading on record, and leaves done only when
// that is all of them. Untagged records (resolve before readings were
// tagged) are taken at their count, as before.
func (l *Live) confirmDone(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, id string) error {
	if l.State != StateDone {
		return nil
	}
	var fields []string
	var want []int64
	for rangeID, v := range l.resolved {
		r := pipeline.ParseRangeRecord(v)
		if r.Reading != "" && r.Users > 0 {
			fields = append(fields, pipeline.ReadField(rangeID, r.Reading))
			want = append(want, r.Users)
		}
	}
	if len(fields) == 0 {
		return nil
	}
	cmds := make(rueidis.Commands, keys.Partitions)
	for p := range keys.Partitions {
		cmds[p] = rdb.B().Hmget().Key(keys.Stats(p, id)).Field(fields...).Build()
	}
	read := make([]int64, len(fields))
	for _, res := range rdb.DoMulti(ctx, cmds...) {
		vals, err := res.ToArray()
		if err != nil {
			return fmt.Errorf("progress of campaign %q: %w", id, err)
		}
		for i := range read {
			read[i] += intAt(vals, i)
		}
	}
	for i, n := range read {
		if n < want[i] {
			l.State = StateRunning
			return nil
		}
	}
	return nil
}

// Counters sums a campaign's counters over the partitions, in one pipelined
// call, without PostgreSQL: for the readers that must work while it is
// down (status) or that sample often (the benchmark). Progress is the full
// report.
func Counters(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, id string) (Live, error) {
	ls, err := countersOf(ctx, rdb, keys, []string{id})
	if err != nil {
		return Live{}, err
	}
	return ls[0], nil
}

// countersOf is Counters of many campaigns in one pipelined call: a page of
// a list costs one round trip, not one per campaign.
func countersOf(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, ids []string) ([]Live, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	per := 3 + keys.Partitions
	cmds := make(rueidis.Commands, 0, per*len(ids))
	for _, id := range ids {
		cmds = append(cmds,
			rdb.B().Hmget().Key(keys.Campaign(id)).
				Field(pipeline.CampaignSplitDone, pipeline.CampaignRangesTotal, pipeline.CampaignFailed, HashExpiresMs,
					pipeline.CampaignAudience, HashMessageUsers, HashRatePerSecond).Build(),
			rdb.B().Hgetall().Key(keys.RangeUsers(id)).Build(),
			rdb.B().Get().Key(keys.Canceled(id)).Build(),
		)
		for p := range keys.Partitions {
			cmds = append(cmds, rdb.B().Hmget().Key(keys.Stats(p, id)).Field(statFields...).Build())
		}
	}
	res := rdb.DoMulti(ctx, cmds...)
	out := make([]Live, len(ids))
	for i, id := range ids {
		l, err := readCounters(id, res[i*per:(i+1)*per])
		if err != nil {
			return nil, err
		}
		out[i] = l
	}
	return out, nil
}

// readCounters sums one campaign's replies: its hash, its resolved ranges,
// its cancel flag, then its partitions' counters.
func readCounters(id string, res []rueidis.RedisResult) (Live, error) {
	var l Live
	for _, r := range res {
		if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) { // nil: no cancel flag
			return l, fmt.Errorf("progress of campaign %q: %w: %w", id, ErrRedis, err)
		}
	}
	head, _ := res[0].ToArray()
	l.SplitDone = intAt(head, 0) == 1
	rangesTotal := intAt(head, 1)
	if len(head) > 2 {
		l.FailReason, _ = head[2].ToString()
	}
	l.ExpiresMs = intAt(head, 3)
	l.Known = l.ExpiresMs > 0
	l.Audience = intAt(head, 4)
	l.Cut = len(head) > 4 && !head[4].IsNil()
	l.Message = len(head) > 5 && !head[5].IsNil()
	if len(head) > 6 && !head[6].IsNil() {
		l.Rate, l.RateKnown = int(intAt(head, 6)), true
	}
	resolved, _ := res[1].AsStrMap()
	var emitted int64
	for _, v := range resolved {
		emitted += pipeline.ParseRangeRecord(v).Users
	}
	if flag, err := res[2].ToString(); err == nil {
		l.Canceled = true
		// A flag set before it held the cancel's time holds "1".
		if ms, _ := strconv.ParseInt(flag, 10, 64); ms > 1 {
			l.CanceledMs = ms
		}
	}
	var in, inReadings int64
	parts := make([]partPace, 0, len(res)-3)
	for _, r := range res[3:] {
		vals, _ := r.ToArray()
		parts = append(parts, partPace{pace: strAt(vals, 13), firstMs: intAt(vals, 8), done: intAt(vals, 4)})
		in += intAt(vals, 0)
		inReadings += intAt(vals, 11)
		l.Targets += intAt(vals, 1)
		l.Muted += intAt(vals, 2)
		l.DuplicatesSuppressed += intAt(vals, 3)
		l.UsersDone += intAt(vals, 4)
		l.Sent += intAt(vals, 5)
		l.Failed += intAt(vals, 6)
		l.InvalidTokens += intAt(vals, 7)
		if first := intAt(vals, 8); first > 0 && (l.FirstSendMs == 0 || first < l.FirstSendMs) {
			l.FirstSendMs = first
		}
		l.LastSendMs = max(l.LastSendMs, intAt(vals, 9))
		l.DoneMs = max(l.DoneMs, intAt(vals, 10))
		l.NoDevices += intAt(vals, 12)
		l.Unsent += intAt(vals, 14)
	}
	l.Pace = recentPace(parts, l.DoneMs)
	l.Waits = waitsOn(l.SplitDone, int64(len(resolved)) >= rangesTotal, in >= emitted)
	l.Holds = holdsOf(l.SplitDone, int64(len(resolved)) >= rangesTotal, in >= emitted, l.UsersDone >= l.Targets)
	switch {
	case !l.SplitDone:
		l.State = StateSplitting
	case int64(len(resolved)) >= rangesTotal && in >= emitted && l.UsersDone >= l.Targets:
		l.State = StateDone
		if inReadings == in {
			l.resolved = resolved // for confirmDone
		}
	default:
		l.State = StateRunning
	}
	return l, nil
}

// waitsOn is the stages (their groups) that have work for a campaign not
// done: split until it emitted every range, resolve until it recorded
// every range, dedupe until it read every id resolve emitted, and deliver
// until every target is done. Once a stage is through with a campaign,
// whether it runs says nothing of the campaign's progress.
func waitsOn(split, resolved, read bool) []string {
	stages := slices.Clone(campaignStages)
	switch {
	case !split:
		return stages
	case !resolved:
		return stages[1:]
	case !read:
		return stages[2:]
	}
	return stages[3:]
}

// campaignStages are the stages (their groups) a campaign passes through,
// in pipeline order.
var campaignStages = []string{"split", "resolve", "dedupe", "deliver"}

// holdsOf is the stages that hold a campaign's work now, by its counters:
// split until it emitted every range; resolve until it recorded every
// range (while split still cuts, whether the ranges out so far are all
// recorded is not counted, so resolve counts as holding some); dedupe
// while it has not read every id of the ranges recorded (resolve records
// a range once its ids are in dedupe's stream); deliver while targets
// dedupe passed on are not done. Unlike waitsOn, a stage ahead of the
// campaign's work that it is through with for now is not one of them.
func holdsOf(split, resolved, read, done bool) []string {
	var out []string
	for i, holds := range []bool{!split, !split || !resolved, !read, !done} {
		if holds {
			out = append(out, campaignStages[i])
		}
	}
	return out
}

// intAt is the integer at i of an HMGET reply, 0 when absent.
func intAt(vals []rueidis.RedisMessage, i int) int64 {
	n, _ := strconv.ParseInt(strAt(vals, i), 10, 64)
	return n
}

// strAt is the string at i of an HMGET reply, "" when absent.
func strAt(vals []rueidis.RedisMessage, i int) string {
	if i >= len(vals) {
		return ""
	}
	s, _ := vals[i].ToString()
	return s
}

// staleDone is how long after the last target done the expected finish is
// still counted from it: deliver counts targets done at least every second
// while a campaign moves (stages/deliver/doneearly.go).
const staleDone = 5 * time.Second

// rates fills the send rate and, for a running campaign, the expected
// finish: the people left at the rate people are reached (Reached: the
// targets done, or of its audience while it is cut). That rate is the
// recent pace (Pace) when deliver keeps it, else the average so far: the
// targets done over the time until the last of them was (DoneMs), not
// until the last send: deliver counts targets done a while after their
// sends (at most a second later in a long round), and over a short or
// capped campaign the last send's time would stretch the rate by that lag.
// Muted people and repeats, reached while a campaign is cut, are taken to
// come at the pace targets are done, in the proportion they did so far.
//
// A campaign that made no progress for pipeline.DownAfter has no finish:
// it is queued when moves says the pipeline moves other work meanwhile,
// stalled when not. moves is asked only then (it reads Redis and
// PostgreSQL: motion.moves).
func (rep *Report) rates(now time.Time, moves func() bool) {
	if rep.LastSendMs > rep.FirstSendMs && rep.FirstSendMs > 0 {
		secs := float64(rep.LastSendMs-rep.FirstSendMs) / 1000
		rep.SendRate = float64(rep.Sends()) / secs
		reached, of := rep.Reached()
		if (rep.State == StateRunning || rep.State == StateSplitting) && rep.Done > 0 && of > reached {
			if last := time.UnixMilli(max(rep.DoneMs, rep.LastSendMs)); now.Sub(last) >= pipeline.DownAfter {
				if moves() {
					rep.QueuedSinceMs = last.UnixMilli()
				} else {
					rep.StalledSinceMs = last.UnixMilli()
				}
				return
			}
			from := now
			if rep.DoneMs > rep.FirstSendMs {
				secs = float64(rep.DoneMs-rep.FirstSendMs) / 1000
				// The targets left are those left at DoneMs; from now,
				// those done since would be counted twice. A DoneMs a
				// few seconds past (deliver counts done about every
				// second while the campaign moves): from now then.
				if done := time.UnixMilli(rep.DoneMs); now.Sub(done) < staleDone {
					from = done
				}
			}
			perUser := secs / float64(reached)
			if rep.Pace > 0 {
				perUser = float64(rep.Done) / float64(reached) / rep.Pace
			}
			left := time.Duration(perUser * float64(of-reached) * float64(time.Second))
			rep.ExpectedFinishMs = from.Add(left).UnixMilli()
		}
	}
}

// Reasons sums, over the partitions, why a campaign's devices ended failed
// or invalid (Keys.Reasons: reason → devices), in one pipelined call. Empty
// for a campaign with no failures or one Redis no longer holds.
func Reasons(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, id string) (map[string]int64, error) {
	cmds := make(rueidis.Commands, 0, keys.Partitions)
	for p := range keys.Partitions {
		cmds = append(cmds, rdb.B().Hgetall().Key(keys.Reasons(p, id)).Build())
	}
	out := map[string]int64{}
	for _, res := range rdb.DoMulti(ctx, cmds...) {
		m, err := res.AsIntMap()
		if err != nil {
			return nil, fmt.Errorf("failure reasons of campaign %q: %w", id, err)
		}
		for reason, n := range m {
			out[reason] += n
		}
	}
	return out, nil
}
