package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// States of a campaign, kept in the campaigns table. scheduled → splitting
// (split took it) → running (every range emitted) → done; canceled and
// failed end it early. done, canceled and failed are final.
const (
	StateScheduled = "scheduled"
	StateSplitting = "splitting"
	StateRunning   = "running"
	StateDone      = "done" // every target reached a terminal state
	StateCanceled  = "canceled"
	StateFailed    = "failed" // deliver could not render or authenticate it
)

// States lists every state, in lifecycle order.
var States = []string{StateScheduled, StateSplitting, StateRunning, StateDone, StateCanceled, StateFailed}

// Final reports whether nothing more happens to a campaign in state s.
func Final(s string) bool { return s == StateDone || s == StateCanceled || s == StateFailed }

// ErrFinished is a cancel of a campaign that is already done (or failed):
// there is nothing left to stop.
var ErrFinished = errors.New("campaign already finished")

// row is a campaign's lifecycle as PostgreSQL keeps it.
type row struct {
	c        Campaign
	started  *time.Time
	finished *time.Time
	snapshot []byte // Counts as JSON, or nil
}

const rowColumns = `id, state, created_at, send_at, started_at, finished_at, rate_per_second, ttl_seconds, counts, kind`

func scanRow(s pgx.Row) (row, error) {
	var (
		r      row
		sendAt *time.Time
		ttl    int64
	)
	err := s.Scan(&r.c.ID, &r.c.State, &r.c.CreatedAt, &sendAt, &r.started, &r.finished, &r.c.RatePerSecond, &ttl, &r.snapshot, &r.c.Kind)
	if sendAt != nil {
		r.c.SendAt = *sendAt
	}
	r.c.TTL = time.Duration(ttl) * time.Second
	return r, err
}

func loadRow(ctx context.Context, db *pgxpool.Pool, id string) (row, error) {
	r, err := scanRow(db.QueryRow(ctx, `SELECT `+rowColumns+` FROM campaigns WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("campaign %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("load campaign %q: %w: %w", id, ErrPostgres, err)
	}
	return r, nil
}

// loadCampaign is loadRow for a campaign's operations (progress, cancel):
// a direct message's id is ErrIsMessage, since its counters mean something
// else (MessageProgress) and it cannot be canceled.
func loadCampaign(ctx context.Context, db *pgxpool.Pool, id string) (row, error) {
	r, err := loadRow(ctx, db, id)
	if err == nil && r.c.Kind == KindMessage {
		err = fmt.Errorf("campaign %q: %w", id, ErrIsMessage)
	}
	return r, err
}

// progress is the row's report, with Redis's counters when Redis has them;
// it records in PostgreSQL what the counters say happened since.
func (r row) progress(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys, rd Reader) (Report, error) {
	l, err := Counters(ctx, rdb, keys, r.c.ID) // a scheduled one's too: its cancel flag
	return r.progressFrom(ctx, rdb, db, keys, l, err, newMotion(rdb, db, keys, rd.downAfter()))
}

// progressFrom is progress from Redis's counters already read, l or why
// they could not be (lerr): a list reads a page's in one call, and asks
// one motion whether the pipeline moves for every idle campaign of it.
// Of a scheduled campaign's, only the cancel flag counts (it has no
// counters yet), and a Redis that failed leaves it scheduled.
func (r row) progressFrom(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys, l Live, lerr error, m *motion) (Report, error) {
	rep := Report{ID: r.c.ID, State: r.c.State, CreatedAt: r.c.CreatedAt, StartedAt: r.started,
		FinishedAt: r.finished, RatePerSecond: r.c.RatePerSecond, ExpiresAt: r.c.ExpiresAt()}
	if !r.c.SendAt.IsZero() {
		rep.SendAt = &r.c.SendAt
	}
	if r.snapshot != nil {
		_ = json.Unmarshal(r.snapshot, &rep.Counts) // written by record below
	}
	if r.c.State == StateScheduled && (lerr != nil || !l.Canceled) {
		return rep, nil
	}
	if lerr != nil {
		return rep, lerr
	}
	if !l.Known {
		return rep, nil // Redis lost it: PostgreSQL's word
	}
	if r.c.State == StateCanceled && !l.Canceled {
		// Redis lost the flag but not the campaign (a failover, AOF's
		// last second): the stages read the flag alone, and would send
		// the rest of it. The record's finished_at is the cancel's time.
		at := time.Now()
		if r.finished != nil {
			at = *r.finished
		}
		if err := flagCanceled(ctx, rdb, keys, r.c, at); err != nil {
			return rep, fmt.Errorf("campaign %q: set its lost cancel flag again: %w", r.c.ID, err)
		}
	}
	if !Final(r.c.State) {
		// Redis lost the rate (or kept an older one): deliver follows
		// the field, and would pace the campaign at the old rate.
		if err := keepRate(ctx, rdb, db, keys, r.c, l); err != nil {
			return rep, fmt.Errorf("campaign %q: set its lost rate again: %w", r.c.ID, err)
		}
	}
	rep.Counts, rep.Error, rep.Done, rep.DoneMs, rep.Pace = l.Counts, l.FailReason, l.UsersDone, l.DoneMs, l.Pace
	next, finMs := r.c.State, l.DoneMs
	if !Final(next) || next == StateCanceled {
		if err := l.confirmDone(ctx, rdb, keys, r.c.ID); err != nil {
			return rep, err
		}
		switch {
		case l.State == StateDone && l.FailReason != "":
			next = StateFailed
		case l.State == StateDone:
			// Every target reached its end, the last ones by sends in
			// flight when a cancel came (or all before it, read after):
			// the cancel stopped nothing, and the record says done, not
			// canceled, whatever was recorded first.
			next = StateDone
		case l.Canceled && next != StateCanceled:
			// Cancel set the flag, then PostgreSQL failed it (or has
			// not yet recorded it): the stages stopped all the same,
			// and the record says so as soon as it can, finished when
			// the cancel was (its flag holds the time).
			next = StateCanceled
			if l.CanceledMs > 0 {
				finMs = l.CanceledMs
			}
		case next != StateCanceled:
			next = l.State
		}
	}
	snap, _ := json.Marshal(rep.Counts)
	if next != r.c.State || (Final(next) && string(snap) != string(r.snapshot)) {
		// The state moved on, or a final campaign's counts did (sends in
		// flight at a cancel are counted after it).
		// It finished when its last target became terminal (the counters
		// say when), not when someone first looked: a campaign nobody
		// watched would otherwise finish at the next list or status.
		// Without that time (no target reached deliver), now. A cancel
		// taken back by a done keeps not its time but the last target's.
		var fin *time.Time
		err := db.QueryRow(ctx, `
			UPDATE campaigns SET state = $2,
			       finished_at = CASE WHEN $2 IN ('done', 'failed', 'canceled') THEN
			           CASE WHEN state = 'canceled' AND $2 <> 'canceled' THEN $5
			           ELSE coalesce(finished_at, $5) END END,
			       counts = CASE WHEN $2 IN ('done', 'failed', 'canceled') THEN $3::jsonb END
			WHERE id = $1 AND (state = $4 OR state = $2)
			RETURNING finished_at`, r.c.ID, next, snap, r.c.State, finishedAt(finMs)).Scan(&fin)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			// Someone moved it meanwhile (a cancel): report what is stored.
			return Reader{DownAfter: m.downAfter}.Progress(ctx, rdb, db, keys, r.c.ID)
		case err != nil:
			return rep, fmt.Errorf("record state of campaign %q: %w", r.c.ID, err)
		}
		rep.FinishedAt = fin
	}
	rep.State = next
	if next == StateSplitting {
		rep.Audience = l.Audience
	}
	rep.SplitStopped = splitStopped(next, l, r.started != nil)
	now := time.Now()
	rep.rates(now, m.downAfter, func() bool { return m.moves(ctx, r.c.ID, l.Waits, l.Holds, now) })
	return rep, nil
}

// finishedAt is a campaign's finished_at from the time its counters or
// its cancel flag say (unix ms), now when they say none.
func finishedAt(ms int64) time.Time {
	if ms > 0 {
		return time.UnixMilli(ms)
	}
	return time.Now()
}

// Start records that split took a scheduled campaign: it reports false
// when the campaign is no longer to be sent (canceled, or already final).
// A final campaign keeps its started_at as it is: one canceled after split
// read its flag but before this never started.
func Start(ctx context.Context, db *pgxpool.Pool, id string) (bool, error) {
	var state string
	err := db.QueryRow(ctx, `
		UPDATE campaigns SET state = CASE WHEN state = 'scheduled' THEN 'splitting' ELSE state END,
		       started_at = CASE WHEN state IN ('scheduled', 'splitting', 'running')
		                         THEN coalesce(started_at, now()) ELSE started_at END
		WHERE id = $1 RETURNING state`, id).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("campaign %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("start campaign %q: %w", id, err)
	}
	return state == StateSplitting || state == StateRunning, nil
}

// flagCanceled sets campaign c's cancel flag (Keys.Canceled), which every
// stage reads before working for it (Cancels); it is kept as long as the
// counters. Its value is when the cancel was (unix ms): a reader that
// records a cancel whose own record failed (progressFrom) records it
// finished then, not when it happened to read.
func flagCanceled(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, c Campaign, at time.Time) error {
	exp := CountersExpireMs(c.ExpiresAt().UnixMilli())
	return rdb.Do(ctx, rdb.B().Set().Key(keys.Canceled(c.ID)).Value(strconv.FormatInt(at.UnixMilli(), 10)).
		PxatMillisecondsTimestamp(exp).Build()).Error()
}

// KeepCanceled sets again the cancel flag of campaign c, read from a
// record that says canceled, if Redis lost it (a failover, AOF's last
// second): the stages after split read the flag alone, and would send the
// rest of it. Split reads the record at each call of a campaign it cuts in
// parts, and calls it there, at no cost to a campaign not canceled; deliver
// and resolve's watchers read the records of theirs (Cancels.DB). A flag
// still set is left as it is (its time is the cancel's).
func KeepCanceled(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, c Campaign) error {
	if c.State != StateCanceled {
		return nil
	}
	exp := CountersExpireMs(c.ExpiresAt().UnixMilli())
	err := rdb.Do(ctx, rdb.B().Set().Key(keys.Canceled(c.ID)).Value(strconv.FormatInt(time.Now().UnixMilli(), 10)).
		Nx().PxatMillisecondsTimestamp(exp).Build()).Error()
	if err != nil && !rueidis.IsRedisNil(err) { // nil: the flag was there
		return fmt.Errorf("campaign %q: keep its cancel flag: %w", c.ID, err)
	}
	return nil
}

// Cancel stops a campaign: ErrNotFound, ErrFinished for a done or failed
// one, and for a canceled one its report again (idempotent). The Redis flag
// (Keys.Canceled) is set before PostgreSQL's state: every stage checks it
// before working for the campaign (Cancels), so no provider request of the
// campaign starts later than CancelPoll after Cancel returns. A scheduled
// campaign's start entry is taken back as well (split would drop it). A
// direct message is not a campaign here (ErrNotFound): it cannot be
// canceled, and the stages do not watch its flag.
func Cancel(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys, id string) (Report, error) {
	r, err := loadCampaign(ctx, db, id)
	if err != nil {
		return Report{ID: id}, err
	}
	rep, err := r.progress(ctx, rdb, db, keys, Reader{})
	switch {
	case err != nil:
		return rep, err
	case rep.State == StateCanceled:
		return rep, nil
	case Final(rep.State):
		return rep, fmt.Errorf("campaign %q is %s: %w", id, rep.State, ErrFinished)
	}
	at := time.Now()
	if err := flagCanceled(ctx, rdb, keys, r.c, at); err != nil {
		return rep, fmt.Errorf("cancel campaign %q: %w", id, err)
	}
	if rep.State == StateScheduled {
		if _, err := pipeline.Unschedule(ctx, rdb, startMessage(keys, id)); err != nil {
			return rep, fmt.Errorf("cancel campaign %q: %w", id, err)
		}
	}
	if _, err := db.Exec(ctx, `
		UPDATE campaigns SET state = 'canceled', finished_at = $2
		WHERE id = $1 AND state IN ('scheduled', 'splitting', 'running')`, id, at); err != nil {
		return rep, fmt.Errorf("cancel campaign %q: %w", id, err)
	}
	rep, err = Progress(ctx, rdb, db, keys, id)
	if err == nil && rep.State != StateCanceled {
		// It finished between the two reads: nothing was stopped.
		return rep, fmt.Errorf("campaign %q is %s: %w", id, rep.State, ErrFinished)
	}
	return rep, err
}
