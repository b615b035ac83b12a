package campaign

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

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
	return Reader{}.Progress(ctx, rdb, db, keys, id)
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
	Cut bool
	// SplitBegan is whether split cut any of it: a range resolved, its
	// ranges totalled or its audience counted. Redis holds no started_at;
	// this stands in for it when PostgreSQL is down (RedisProgress).
	SplitBegan bool
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
