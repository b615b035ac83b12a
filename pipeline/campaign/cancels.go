package campaign

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// CancelPoll is how often a process reads the cancel flags of the campaigns
// it works for: a stage starts no work for a campaign later than this after
// its cancel returned.
const CancelPoll = 200 * time.Millisecond

// cancelForget: a campaign not asked about for this long is no longer
// watched; the watcher stops when it watches none.
const cancelForget = time.Minute

// cancelRead bounds one refresh of the flags. It is longer than CancelPoll:
// cut at the poll, a refresh would never finish while Redis answers slower
// than that, and a cancel would go unseen for as long as Redis is slow. The
// refreshes are one goroutine's, one after the other, so they never pile
// up, and one that took longer than CancelPoll is followed at once by the
// next (the ticker's tick is waiting). An answer this late is past
// cancelTrust anyway.
const cancelRead = time.Second

// cancelTrust is how long a flag read as not canceled is believed. A read
// sent at r that says "not canceled" means the cancel returned after r:
// believed until r+cancelTrust, no answer lets a send start more than
// cancelTrust after a cancel, however slow Redis is (DESIGN, guarantee 7:
// 1 s; the rest is the send's margin). Past it, the flag is read again.
const cancelTrust = 800 * time.Millisecond

// Cancels tells the stages of a process which campaigns were canceled,
// without a Redis call per question: the first question about a campaign
// reads its flag, and from then on one pipelined read every CancelPoll
// refreshes the flags of every campaign asked about in the last minute; a
// campaign asked about again after that is read again, so forgetting it
// only costs a read. The zero value is not usable; build it with
// NewCancels. It needs no closing: its poller ends when nothing is asked
// about for a minute.
type Cancels struct {
	rdb  rueidis.Client
	keys pipeline.Keys
	// Forget is how long a campaign nobody asks about stays watched
	// (NewCancels: a minute). Set it before the first question.
	Forget time.Duration
	// DB, if set, is where the watcher reads the records of the campaigns
	// it watches, every RecordPoll: one canceled whose flag Redis lost (a
	// failover, the AOF's last second) gets its flag again (KeepCanceled)
	// and is answered canceled. The stages after split read the flag
	// alone, and would otherwise send the rest of it until a reader of the
	// campaign (the console, a list) set the flag again. Set it before the
	// first question.
	DB *pgxpool.Pool
	// RecordPoll is how often the records are read (DB); zero: every
	// recordPoll (5 s). A test sets less, so as not to wait it out. Set it
	// before the first question.
	RecordPoll time.Duration

	watched watchSet[*cancelWatch]
}

type cancelWatch struct {
	asked
	canceled atomic.Bool
}

// NewCancels builds the watcher of one process.
func NewCancels(rdb rueidis.Client, keys pipeline.Keys) *Cancels {
	return &Cancels{rdb: rdb, keys: keys, Forget: cancelForget}
}

// Canceled reports whether campaign id was canceled. A campaign not
// watched (never asked about, or forgotten) has its flag read now; a
// watched one's flag, refreshed every CancelPoll, is believed while it was
// read less than cancelTrust ago and read now otherwise, so whatever
// Redis's latency an answer false is never older than that (while Redis
// answers slower, Canceled waits, up to ctx). A read's error is returned
// (the caller retries its batch). While Redis keeps up it is cheap enough
// for a send's hot path: a lock, a map lookup, atomics.
func (cs *Cancels) Canceled(ctx context.Context, id string) (bool, error) {
	now := time.Now().UnixNano()
	w, watched := cs.watched.get(id)
	if watched {
		w.at.Store(now)
		if w.canceled.Load() || now-w.read.Load() < int64(cancelTrust) {
			return w.canceled.Load(), nil
		}
	}
	for {
		sent := time.Now().UnixNano()
		n, err := cs.rdb.Do(ctx, cs.rdb.B().Exists().Key(cs.keys.Canceled(id)).Build()).AsInt64()
		if err != nil {
			return false, err
		}
		if n == 0 && time.Now().UnixNano()-sent >= int64(cancelTrust) {
			continue // too old to be believed by the time it came: Redis is that slow
		}
		if !watched {
			w = cs.watched.add(id, now, &cancelWatch{}, cs.poll)
		}
		if n == 1 {
			w.canceled.Store(true)
		}
		w.read.Store(sent)
		return w.canceled.Load(), nil
	}
}

// Watching is how many campaigns the watcher reads the flags of.
func (cs *Cancels) Watching() int { return cs.watched.len() }

// poll refreshes the watched flags every CancelPoll, forgetting campaigns
// not asked about for Forget, until none is left. A failed read keeps
// the flags as they were (a canceled flag is never unset).
func (cs *Cancels) poll() {
	t := time.NewTicker(CancelPoll)
	defer t.Stop()
	records := recordCheck{every: cs.RecordPoll}
	for range t.C {
		forget := time.Now().Add(-cs.Forget).UnixNano()
		ids, ws, ok := cs.watched.sweep(forget, func(w *cancelWatch) bool { return !w.canceled.Load() })
		if !ok {
			return
		}
		if len(ids) == 0 {
			continue
		}
		cmds := make(rueidis.Commands, len(ids))
		for i, id := range ids {
			cmds[i] = cs.rdb.B().Exists().Key(cs.keys.Canceled(id)).Build()
		}
		sent := time.Now().UnixNano()
		ctx, cancel := context.WithTimeout(context.Background(), cancelRead)
		for i, res := range cs.rdb.DoMulti(ctx, cmds...) {
			n, err := res.AsInt64()
			if err != nil {
				continue
			}
			if n == 1 {
				ws[i].canceled.Store(true)
			}
			ws[i].read.Store(sent)
		}
		cancel()
		if records.due(cs.DB) {
			cs.readRecords(ids, ws)
		}
	}
}

// readRecords reads the records of campaigns ids (watched as ws, not
// canceled when their flags were read): those that say canceled get their
// flag again and are answered canceled. A failed read changes nothing;
// the next is a RecordPoll later.
func (cs *Cancels) readRecords(ids []string, ws []*cancelWatch) {
	ctx, cancel := context.WithTimeout(context.Background(), cancelRead)
	defer cancel()
	canceled, err := recordsAmong(ctx, cs.DB, ids, StateCanceled)
	if err != nil {
		return
	}
	for i, id := range ids {
		c, ok := canceled[id]
		if !ok || ws[i].canceled.Load() {
			continue
		}
		// The record decides, whether or not the flag could be written:
		// this process stops now, the others at their next read.
		_ = KeepCanceled(ctx, cs.rdb, cs.keys, c)
		ws[i].canceled.Store(true)
	}
}
