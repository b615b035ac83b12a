package campaign

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// RatePoll is how often a process reads the rates of the campaigns it
// paces (HashRatePerSecond): with rateTrust, a deliver process paces a
// campaign at the rate SetRate set within 1 s of its return.
const RatePoll = 200 * time.Millisecond

// rateTrust is how long a rate read is believed: an answer read at r is
// used until r+rateTrust at most, then read again (as cancelTrust: however
// slow Redis is, no send is paced by a rate older than that). Beside the
// poll's RatePoll that keeps it fresh, it makes the 1 s.
const rateTrust = 800 * time.Millisecond

// Rates tells the stages of a process the current own cap of the
// campaigns they pace, without a Redis call per question: the first
// question about a campaign reads its field, and from then on one
// pipelined read every RatePoll refreshes the fields of every campaign
// asked about in the last minute (Forget). Build it with NewRates; its
// poller ends when nothing is asked about for Forget.
type Rates struct {
	rdb  rueidis.Client
	keys pipeline.Keys
	// Forget is how long a campaign nobody asks about stays watched
	// (NewRates: a minute). Set it before the first question.
	Forget time.Duration
	// DB, if set, is where the watcher reads the records of the campaigns
	// it watches, every RecordPoll: one whose hash lost its rate, or holds
	// an older one than the record's (a failover, a restart without
	// persistence, the AOF's last second), gets the record's again
	// (keepRate), which the next poll reads. Without it the process paces
	// by the row it cached, the old rate, until a reader of the campaign
	// (status, a list, the console) writes the field again. Set it before
	// the first question.
	DB *pgxpool.Pool
	// RecordPoll is how often the records are read (DB); zero: every
	// recordPoll (5 s). A test sets less, so as not to wait it out. Set it
	// before the first question.
	RecordPoll time.Duration

	watched watchSet[*rateWatch]
}

type rateWatch struct {
	asked
	rate atomic.Int64 // -1: the hash has no rate
}

// NewRates builds the watcher of one process.
func NewRates(rdb rueidis.Client, keys pipeline.Keys) *Rates {
	return &Rates{rdb: rdb, keys: keys, Forget: cancelForget}
}

// Rate is campaign id's own cap (0: none) as its hash says, and false when
// the hash has no rate (Redis lost it, or the campaign is from before the
// field): the caller then keeps the record's. An answer is never older
// than rateTrust; while Redis answers slower, Rate waits, up to ctx. A
// read's error is returned.
func (rs *Rates) Rate(ctx context.Context, id string) (int, bool, error) {
	now := time.Now().UnixNano()
	w, watched := rs.watched.get(id)
	if watched {
		w.at.Store(now)
		if now-w.read.Load() < int64(rateTrust) {
			return answer(w.rate.Load())
		}
	}
	for {
		sent := time.Now().UnixNano()
		rate, err := rs.read(ctx, id)
		if err != nil {
			return 0, false, err
		}
		if time.Now().UnixNano()-sent >= int64(rateTrust) {
			continue // too old to be believed by the time it came
		}
		if !watched {
			w = rs.watched.add(id, now, &rateWatch{}, rs.poll)
		}
		w.rate.Store(rate)
		w.read.Store(sent)
		return answer(rate)
	}
}

func answer(rate int64) (int, bool, error) { return int(max(rate, 0)), rate >= 0, nil }

func (rs *Rates) command(id string) rueidis.Completed {
	return rs.rdb.B().Hget().Key(rs.keys.Campaign(id)).Field(HashRatePerSecond).Build()
}

// read reads campaign id's rate, -1 for none.
func (rs *Rates) read(ctx context.Context, id string) (int64, error) {
	return rateOf(rs.rdb.Do(ctx, rs.command(id)))
}

func rateOf(res rueidis.RedisResult) (int64, error) {
	v, err := res.ToString()
	if rueidis.IsRedisNil(err) {
		return -1, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return -1, nil // not ours: the record's rate holds
	}
	return n, nil
}

// Watching is how many campaigns the watcher reads the rates of.
func (rs *Rates) Watching() int { return rs.watched.len() }

// poll refreshes the watched rates every RatePoll, forgetting campaigns not
// asked about for Forget, until none is left. A failed read keeps the rate
// as it was, believed no longer than rateTrust.
func (rs *Rates) poll() {
	t := time.NewTicker(RatePoll)
	defer t.Stop()
	records := recordCheck{every: rs.RecordPoll}
	for range t.C {
		forget := time.Now().Add(-rs.Forget).UnixNano()
		ids, ws, ok := rs.watched.sweep(forget, func(*rateWatch) bool { return true })
		if !ok {
			return
		}
		cmds := make(rueidis.Commands, len(ids))
		for i, id := range ids {
			cmds[i] = rs.command(id)
		}
		sent := time.Now().UnixNano()
		ctx, cancel := context.WithTimeout(context.Background(), cancelRead)
		seen := make(map[string]int64, len(ids)) // the rates read, by id
		for i, res := range rs.rdb.DoMulti(ctx, cmds...) {
			rate, err := rateOf(res)
			if err != nil {
				continue
			}
			ws[i].rate.Store(rate)
			ws[i].read.Store(sent)
			seen[ids[i]] = rate
		}
		cancel()
		if records.due(rs.DB) {
			rs.readRecords(seen)
		}
	}
}

// readRecords reads the records of the campaigns whose rates were just
// read (seen: -1 for none) and writes the record's rate into the hash of
// those it differs from (keepRate, a compare and set against the rate seen,
// read before the record: a SetRate in between is not undone). The next
// poll reads it. A failed read or write changes nothing; the next is a
// RecordPoll later.
func (rs *Rates) readRecords(seen map[string]int64) {
	if len(seen) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cancelRead)
	defer cancel()
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	// A finished campaign sends nothing more: whatever its hash says.
	cs, err := recordsAmong(ctx, rs.DB, ids, StateScheduled, StateSplitting, StateRunning)
	if err != nil {
		return
	}
	for id, c := range cs {
		rate := seen[id]
		_ = keepRate(ctx, rs.rdb, rs.DB, rs.keys, c, Live{Rate: int(max(rate, 0)), RateKnown: rate >= 0})
	}
}
