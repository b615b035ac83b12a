package campaign

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/puddle/v2"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// A campaign's record is PostgreSQL's and its live counters are Redis's.
// While PostgreSQL cannot be reached (a failover, a restart: 10–60 s) the
// sends go on and Redis has every counter: Progress and MessageProgress
// then report what Redis holds, marked partial, and an operator watching a
// launch still sees it go out.

// ErrPostgres and ErrRedis mark which store failed a read, beside its own
// error: what a reader is told names the server to look at.
var (
	ErrPostgres = errors.New("the PostgreSQL server failed")
	ErrRedis    = errors.New("the Redis server failed")
)

// Unreachable names the store a failed read's marks (ErrPostgres,
// ErrRedis) blame: "PostgreSQL is unreachable", "Redis is unreachable" or
// both; ok is false when the error carries neither mark. The API and the
// console say it in these same words.
func Unreachable(err error) (say string, ok bool) {
	pg, redis := errors.Is(err, ErrPostgres), errors.Is(err, ErrRedis)
	switch {
	case pg && redis:
		return "PostgreSQL and Redis are unreachable", true
	case pg:
		return "PostgreSQL is unreachable", true
	case redis:
		return "Redis is unreachable", true
	}
	return "", false
}

// ErrPartial is a report read from Redis alone because PostgreSQL failed
// (errors.Is(err, ErrPostgres) holds too); its RecordUnavailable says so.
// A reader that shows progress shows the report with that notice; one that
// acts on the record's state takes it as the failure it wraps.
var ErrPartial = errors.New("reported from Redis alone")

// ErrNotLive is an id Redis holds no live counters of, asked while
// PostgreSQL failed (errors.Is(err, ErrPostgres) holds too): none such, or
// one older than Redis keeps it (KeepCounters past its expiry).
var ErrNotLive = errors.New("no live counters in Redis")

// RecordUnavailable is the notice of a partial report.
const RecordUnavailable = "PostgreSQL is unreachable: state and counts are live from Redis; " +
	"the record (created_at, content, finish) returns when it is back"

// outage tells a failure of PostgreSQL that Redis may stand in for: a
// server that refused or dropped us (a failover, a restart), or that did
// not answer within recordPatience. Not one that took the caller's whole
// time (no time is left to read Redis, and the caller's bound is its to
// keep), nor a pool closed under us: that is this process stopping, not
// PostgreSQL.
func outage(ctx context.Context, err error) bool {
	return errors.Is(err, ErrPostgres) && ctx.Err() == nil && !errors.Is(err, puddle.ErrClosedPool)
}

// recordPatience is how long a progress read waits for the record before
// it reports from Redis alone. A read by primary key answers in
// milliseconds; one still waiting after 2 s is a server failing over whose
// connections hang rather than refuse (a partition, a frozen primary), and
// waiting on it for the caller's whole bound (the API's 5 s) would leave
// no time to read Redis: a launch being watched would go blank.
const recordPatience = 2 * time.Second

// readRecord runs read of the record bounded by recordPatience, or by half
// of what the caller's deadline leaves when that is less, so Redis always
// has the other half; a read cut so says how long it waited.
func readRecord(ctx context.Context, read func(ctx context.Context) error) error {
	wait := recordPatience
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d)/2)
	}
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	err := read(rctx)
	if err != nil && rctx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("no answer within %s: %w", wait.Round(time.Millisecond), err)
	}
	return err
}

// RedisProgress is Progress while PostgreSQL failed with pgErr: what
// Redis holds of the campaign, with ErrPartial. Progress calls it when
// PostgreSQL refuses it; a reader that could not reach PostgreSQL at all
// (status, started during the outage) calls it itself. A campaign Redis does not
// hold (none, or older than Redis keeps one) is ErrNotLive, and when
// Redis fails too the error has both stores'.
//
// The state is the counters', as the record would have moved on to, with
// what Redis knows besides: its cancel flag (canceled) and its start entry
// still waiting (scheduled, at that send_at). A done is reported but not
// recorded: the first reader after PostgreSQL is back records it, with the
// time its last target was done. Its rate is the hash's (HashRatePerSecond),
// the one deliver paces by; 0 when the hash has none.
func RedisProgress(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, id string, pgErr error) (Report, error) {
	return Reader{}.redisProgress(ctx, rdb, keys, id, pgErr)
}

func (rd Reader) redisProgress(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, id string, pgErr error) (Report, error) {
	rep := Report{ID: id}
	l, err := Counters(ctx, rdb, keys, id)
	switch {
	case err != nil:
		return rep, errors.Join(pgErr, err)
	case !l.Known:
		return rep, fmt.Errorf("campaign %q: %w: %w", id, ErrNotLive, pgErr)
	case l.Message:
		return rep, fmt.Errorf("campaign %q: %w", id, ErrIsMessage)
	}
	rep.State, err = redisState(ctx, rdb, keys, id, &l, &rep)
	if err != nil {
		return Report{ID: id}, errors.Join(pgErr, err)
	}
	rep.RecordUnavailable = RecordUnavailable
	rep.ExpiresAt = time.UnixMilli(l.ExpiresMs)
	rep.Counts, rep.Error, rep.Done, rep.DoneMs, rep.Pace = l.Counts, l.FailReason, l.UsersDone, l.DoneMs, l.Pace
	if l.RateKnown {
		// The rate deliver paces by now: SetRate writes it beside the
		// record, and a change made just before the outage is here.
		rep.RatePerSecond = l.Rate
	}
	if rep.State == StateSplitting {
		rep.Audience = l.Audience
	}
	// As Progress says it: a cancel that stopped split leaves a partial
	// count, and a report from Redis alone left it unsaid, so the list
	// and status showed the targets cut by then as the whole audience.
	// Without started_at (the record's), split having cut any of it says
	// it had started.
	rep.SplitStopped = splitStopped(rep.State, l, l.SplitBegan)
	// Queued needs PostgreSQL's list of the campaigns sending
	// (motion.lastProgress): without it, a stage not running says
	// stalled, and a campaign whose stages all run is neither.
	unsure := false
	rep.rates(time.Now(), rd.downAfter(), func() bool {
		working, err := pipeline.Working(ctx, rdb, keys, l.Waits...)
		unsure = len(l.Waits) > 0 && working && err == nil
		return unsure
	})
	if unsure {
		rep.QueuedSinceMs = 0
	}
	return rep, fmt.Errorf("campaign %q: %w: %w", id, ErrPartial, pgErr)
}

// redisState is a campaign's state by what Redis holds: canceled by its
// flag, scheduled (and when, in rep.SendAt) while its start entry waits
// and split never took it (a capped campaign cut ahead waits as the same
// entry between split's calls), else the counters' (a done confirmed as
// Progress does, failed when deliver failed it). A canceled campaign
// whose every target reached its end is done, as Progress records it.
func redisState(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, id string, l *Live, rep *Report) (string, error) {
	if !l.Canceled {
		at, waits, err := pipeline.ScheduledAt(ctx, rdb, startMessage(keys, id))
		if err != nil {
			return "", fmt.Errorf("progress of campaign %q: %w: %w", id, ErrRedis, err)
		}
		if waits && !l.Cut { // else split's next call: the same entry
			rep.SendAt = &at
			return StateScheduled, nil
		}
	}
	if err := l.confirmDone(ctx, rdb, keys, id); err != nil {
		return "", fmt.Errorf("%w: %w", ErrRedis, err)
	}
	switch {
	case l.State == StateDone && l.FailReason != "":
		return StateFailed, nil
	case l.State != StateDone && l.Canceled:
		return StateCanceled, nil
	}
	return l.State, nil
}

// RedisMessageProgress is MessageProgress while PostgreSQL failed with pgErr, as
// RedisProgress is Progress's. A message's state and counts are all
// Redis's; only whether it lists raw tokens is the record's.
func RedisMessageProgress(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, id string, pgErr error) (MessageReport, error) {
	rep := MessageReport{ID: id, State: MessageSending}
	l, err := Counters(ctx, rdb, keys, id)
	switch {
	case err != nil:
		return rep, errors.Join(pgErr, err)
	case !l.Known:
		return rep, fmt.Errorf("message %q: %w: %w", id, ErrNotLive, pgErr)
	case !l.Message:
		return rep, fmt.Errorf("message %q: %w", id, ErrIsCampaign)
	}
	reps, err := messageCounters(ctx, rdb, keys, []string{id})
	if err != nil {
		return rep, errors.Join(pgErr, err)
	}
	rep = reps[0]
	rep.RecordUnavailable = RecordUnavailable
	return rep, fmt.Errorf("message %q: %w: %w", id, ErrPartial, pgErr)
}
