package pipeline

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// Entry is one stream entry handed to a handler.
type Entry struct {
	ID     string
	Fields map[string]string
}

// Written is when the entry was appended to its stream: the milliseconds of
// its ID (Redis's clock), or the zero time for an ID that is not a stream ID.
func (e Entry) Written() time.Time {
	ms, _, _ := strings.Cut(e.ID, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

// Message is one entry a handler emits downstream.
type Message struct {
	Stream string   // the full partition key, from Keys.Stream
	Fields []string // field, value, field, value...
}

// Batch is what a handler works on: entries read from one partition of the
// handler's input stream, in stream order. The handler records its effects on
// the batch; the runner makes them durable and acks the input.
type Batch struct {
	Stream    string // the partition key the entries came from
	Partition int
	Lane      Lane // the lane of Stream: a stage emits into the same lane downstream
	Entries   []Entry

	emits   []Message
	delays  []delayed
	incrs   []incr
	failed  map[int]error
	dead    map[int]error
	parts   []deadEntry     // parts of entries dead-lettered (DeadLetterPart)
	script  *scriptCall     // the handler's part of the commit (Commit)
	rdb     rueidis.Client  // the runner's, for EmitNow
	release func()          // stops the runner keeping the batch claimed (heartbeat.go)
	lost    chan struct{}   // closed once some entry is no longer this consumer's (heartbeat.go)
	stop    <-chan struct{} // closed when the runner stops reading (Stopping)
	claimed bool            // taken over by XAUTOCLAIM: its entries were delivered before
	lease   *lease          // until when the entries are surely ours (Held); nil: always
	moved   atomic.Int64    // unix ns of the handler's last Progress, 0 before
	emitted atomic.Int64    // unix ns of its last EmitNow, 0 before (moved.go)
	// unkept is the unix ns of the last keep that could not reach Redis
	// (keepClaimed), 0 before: Redis failed this batch's stream (outlast).
	unkept atomic.Int64
	// keepDue is when the keep in flight (keepClaimed) is overdue, unix ns,
	// 0 while none is: past it, Redis counts as away (RedisAwaySince).
	keepDue atomic.Int64
	// acking counts the entries the commits of this batch may have acked,
	// added before each commit starts: the background keep (keepClaimed)
	// counts no more acked entries than this as ours; any more were
	// another consumer's commit (only a commit acks).
	acking atomic.Int64
	// parent is the batch processEach split this one from: it holds the
	// keep of both, so unkept and acking are read and counted on it (root).
	parent *Batch
	// selfAcked: a commit of an earlier try acked some entries (its dead
	// letters) before failing, so an entry no longer pending may be ours.
	selfAcked bool
}

// Progress tells the runner the handler's work on the batch moved on. A
// handler whose batches take long by design (deliver sending at the
// provider's pace: minutes under a low --tps) calls it as its work advances,
// so that status reads its process stuck (stuck.go) only once the batch
// stopped moving for StuckAfter, not once it took that long. Cheap: an
// atomic store.
func (b *Batch) Progress() { b.moved.Store(time.Now().UnixNano()) }

// Stopping is closed when the process is shutting down: the runner stopped
// reading and gives the batches in hand ShutdownTimeout to finish. A handler
// whose work is long and repeatable (deliver's sends) starts no more of it,
// lets what is in flight finish and returns an error wrapping ErrStopping
// (or marks the entries it did not finish with Fail(i, ErrStopping), and
// returns nil: the others are acked): the entries stay pending, with the
// delivery that brought them given back, and whoever claims them redoes
// only what was not done. A nil channel (a batch built by hand) is never
// closed.
func (b *Batch) Stopping() <-chan struct{} { return b.stop }

// Lost is closed when the runner finds, while the batch is being handled,
// that this consumer no longer owns some of its entries: another consumer
// claimed them, or Redis lost the stream or group (a restart without
// persistence, a failover). Whoever owns them now will do their work, so a
// handler with side effects that cannot be undone (a provider request)
// starts no more of them once Lost is closed, lets the ones in flight finish
// and returns; the runner then drops the batch without acking it. A nil
// channel (a batch built by hand, in tests) is never closed.
func (b *Batch) Lost() <-chan struct{} { return b.lost }

// IsLost reports whether Lost is closed.
func (b *Batch) IsLost() bool {
	select {
	case <-b.lost:
		return true
	default:
		return false
	}
}

// Held reports whether the batch's entries are surely still this
// consumer's: no other consumer can have claimed them yet, whatever this
// process cannot see (Redis unreachable, or the process stalled). A
// handler with side effects that cannot be undone (a provider request, a
// POST) asks it right before each one starts, after any wait of its own
// (a rate-limit permit): a consumer that lost its entries unawares would
// otherwise go on starting what their new owner starts too. The rules:
//   - It is the batch's lease (lease.go): from when the read or claim that
//     delivered the entries was sent, for ClaimIdle less a tenth, renewed, from
//     when it was sent, by each keep (every KeepEvery, far below
//     ClaimIdle) that reaches Redis and finds every entry still this
//     consumer's; a keep that fails or finds one taken renews nothing.
//   - Not held is not Lost: the entries may well be ours still (Redis is
//     merely away). Wait for WaitHeld, start nothing meanwhile.
//   - A healthy process never sees it false; one cut off from Redis for
//     most of ClaimIdle does, and starts nothing more until Redis answers.
//   - Cheap: a monotonic clock read and a compare. A batch built by hand
//     (tests) is always held.
func (b *Batch) Held() bool {
	l := b.root().lease
	return l == nil || l.held(time.Now())
}

// RedisAwaySince reports whether a keep of the batch (the runner's, every
// KeepEvery while the batch is in hand: heartbeat.go) found Redis
// unreachable for the batch's stream at t or later, or has waited for its
// answer longer than keepOverdue, now or in a spell that ended at t or
// later: the master serving the stream's hash tag was down, restarting,
// failing over, or cut off by the network (a keep that hangs fails only
// once the connection gives up, 10 s on, when the replica may be promoted
// already). Writes a handler
// made under that tag before such an outage may be gone after it, though
// Redis acknowledged each one (a promoted replica lacks what it had not
// received), and the handler itself may have written nothing while Redis
// was away, so seen no error: a handler that is about to build on those
// writes (deliver counting users done over their sent marks) asks this
// first. The rules:
//   - True is cautious: a keep sent before t that failed after it counts,
//     and so does one overdue now, or answered at t or later after it was
//     overdue: Redis counts as away from when such a keep was sent until
//     its answer came (a slow Redis too).
//   - False is no proof: an outage shorter than KeepEvery may fall between
//     two keeps, and a keep still waiting for an answer counts only once it
//     is overdue.
//   - Cheap: two atomic loads (and a clock read while a keep is in flight).
//     A batch built by hand (tests) never sees one.
func (b *Batch) RedisAwaySince(t time.Time) bool {
	root := b.root()
	if u := root.unkept.Load(); u != 0 && u >= t.UnixNano() {
		return true
	}
	due := root.keepDue.Load()
	return due != 0 && time.Now().UnixNano() > due
}

// WaitHeld returns true at once while the batch is Held, else waits until
// a keep renews its lease (true), or the batch is Lost, the process
// Stopping, or ctx ends (false: start nothing more, as on Lost; the
// caller tells which by asking them).
func (b *Batch) WaitHeld(ctx context.Context) bool {
	l := b.root().lease
	if l == nil || l.held(time.Now()) {
		return true // no lock: asked before every send
	}
	for {
		next := l.renewed() // before the clock: a renewal after it wakes us
		if l.held(time.Now()) {
			return true
		}
		select {
		case <-next:
		case <-b.Lost():
			return false
		case <-b.Stopping():
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// Emit queues a downstream entry. Emits are XADDed before the input is acked:
// in one atomic script when every emitted stream shares the input's hash tag,
// otherwise in order (emit, then ack), so a crash can only repeat, never lose.
func (b *Batch) Emit(stream string, fields ...string) {
	b.emits = append(b.emits, Message{Stream: stream, Fields: fields})
}

// EmitNow XADDs msgs at once, before the batch is committed: for a handler
// whose work on one entry is long and checkpointed (split cutting a campaign
// into ranges under backpressure), so what it emitted so far is durable
// whatever becomes of the batch. A crash then repeats them on redelivery, as
// any emit before an ack does; downstream stages are idempotent.
func (b *Batch) EmitNow(ctx context.Context, msgs ...Message) error {
	if b.rdb == nil {
		return errNoRunner
	}
	if _, err := Emit(ctx, b.rdb, msgs...); err != nil {
		return err
	}
	// Work moved on (moved.go), though not as Progress: a handler that
	// emits and still holds its batch past StuckAfter is read stuck as
	// before.
	b.emitted.Store(time.Now().UnixNano())
	return nil
}

var errNoRunner = errors.New("EmitNow on a batch no runner handed out")

type incr struct {
	key, field string
	delta      int64
}

// Incr adds delta to a hash field (a campaign's counters) in the same commit
// that acks the batch: atomically when the key shares the input's hash tag,
// so a redelivered batch never counts twice.
func (b *Batch) Incr(key, field string, delta int64) {
	b.incrs = append(b.incrs, incr{key, field, delta})
}

// Fail leaves entry i unacknowledged: it will be redelivered after the claim
// idle time and dead-lettered once it was delivered too often.
func (b *Batch) Fail(i int, err error) {
	if b.failed == nil {
		b.failed = map[int]error{}
	}
	b.failed[i] = err
}

// DeadLetter sends entry i to the dead-letter stream now, with the reason, and
// acks it: for input that can never succeed (malformed fields).
func (b *Batch) DeadLetter(i int, reason error) {
	if b.dead == nil {
		b.dead = map[int]error{}
	}
	b.dead[i] = reason
}

// DeadLetterPart sends part of entry i to the dead-letter stream with the
// given fields in its place (deliver: the users of an entry whose retry
// budget is spent), while the entry itself is acked as done. attempts is
// what the DLQ shows as its deliveries. `pushpipe dlq retry` puts the part
// back into the entry's stream.
func (b *Batch) DeadLetterPart(i int, reason error, attempts int, fields map[string]string) {
	b.parts = append(b.parts, deadEntry{Entry: Entry{ID: b.Entries[i].ID, Fields: fields}, Reason: reason.Error(), Deliveries: int64(attempts)})
}

// Claimed reports whether the batch was taken over from another consumer
// (XAUTOCLAIM): its entries waited out the claim idle time, so their age
// says nothing about how fast this consumer keeps up.
func (b *Batch) Claimed() bool { return b.claimed }

// allIDs returns the ids of every entry of the batch, acked or not: what a
// keep checks is still this consumer's.
func (b *Batch) allIDs() []string {
	ids := make([]string, len(b.Entries))
	for i, e := range b.Entries {
		ids[i] = e.ID
	}
	return ids
}

// IDs returns the ids of the entries the runner would ack now.
func (b *Batch) IDs() []string {
	ids := make([]string, 0, len(b.Entries))
	for i, e := range b.Entries {
		_, bad := b.failed[i]
		_, dead := b.dead[i] // acked by the dead-letter write already
		if !bad && !dead {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// root is the batch handOff keeps claimed: b, or the one processEach split
// it from.
func (b *Batch) root() *Batch {
	for b.parent != nil {
		b = b.parent
	}
	return b
}

func (b *Batch) reset() {
	b.emits, b.delays, b.incrs, b.failed, b.dead, b.parts, b.script = nil, nil, nil, nil, nil, nil, nil
}

// Handler processes a batch. The contract:
//   - nil: every entry not marked Fail is done; the runner emits what was
//     queued and acks the rest (entries marked DeadLetter go to the DLQ first).
//   - an error: the batch failed as a whole (a database or Redis outage); the
//     runner discards what was queued, backs off and calls Handle again with
//     the same batch, and gives up after a while, leaving the entries pending
//     for a later claim. Wrap with Permanent to dead-letter the whole batch.
//
// A handler never XACKs, XADDs or claims itself: it records its effects on
// the batch (Emit, EmitAt, EmitNow, Incr, Fail, DeadLetter, DeadLetterPart,
// Commit) and the runner makes them durable with the ack. It must not keep
// the batch after returning.
type Handler interface {
	Handle(ctx context.Context, b *Batch) error
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, b *Batch) error

// Handle calls f(ctx, b).
func (f HandlerFunc) Handle(ctx context.Context, b *Batch) error { return f(ctx, b) }

// PermanentError marks an error that retrying cannot fix.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so the runner dead-letters the batch instead of retrying.
func Permanent(err error) error { return &PermanentError{Err: err} }
