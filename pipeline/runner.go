package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"
)

// Options configure a stage's consumer-group runner.
type Options struct {
	Stage   string // the stage's name: metrics label and default group
	Stream  string // the logical input stream (StreamDedupe...): its bulk lane
	Express bool   // also read the express lane, Express.Stream(Stream), first
	// ExpressConcurrency is how many handlers take express batches only, on
	// top of Concurrency (whose handlers take an express batch before a bulk
	// one, but not two in a row while a bulk one waits), default
	// max(1, Concurrency/2). Only with Express.
	ExpressConcurrency int
	Group              string        // consumer group, default Stage
	Consumer           string        // consumer name, default host-pid
	Partitions         []int         // partitions to serve, default all
	Concurrency        int           // handlers running at once, default 4
	BatchSize          int           // XREADGROUP COUNT, default 100
	Block              time.Duration // XREADGROUP BLOCK, default 2s
	ClaimIdle          time.Duration // take over entries idle this long, default 30s
	MaxDeliveries      int64         // dead-letter after this many deliveries, default 10
	ShutdownTimeout    time.Duration // finish in-flight batches within this, default 10s
	Retention          time.Duration // trim acknowledged entries older than this, default 24h; <0 disables
	RetryFor           time.Duration // retry a failing batch in-process this long before leaving it for a claim, default ClaimIdle/2
	// Linger is how long a read that found fewer than BatchSize entries
	// waits for more before its batch goes to a handler; 0 (the default)
	// hands over at once. XREADGROUP's BLOCK returns with the first entry,
	// so a stage whose entries trickle in gets batches of one: for the
	// webhook that was a POST per results entry (20,278 POSTs for 20,510
	// events while a rate-capped campaign went out), the flood of small
	// callbacks a receiver's own API falls over under. A stage that must
	// not wait (dedupe, deliver: a message's latency) keeps 0.
	Linger time.Duration
	// KeepEvery is how often a batch in progress is kept claimed and checked
	// to be still ours (Batch.Lost), default ClaimIdle/3 but at most 250ms:
	// it bounds how long a handler goes on working for entries another
	// consumer took, or that Redis lost. Less than MinKeepEvery is taken
	// as MinKeepEvery.
	KeepEvery time.Duration
	// Outputs are streams the stage writes (per partition) that may have
	// no reader (results): the runner trims them for the partitions it
	// serves, with TrimOutput.
	Outputs []string
	// DelayPoll is how often due delayed entries (Batch.EmitAt, EmitAt) are
	// moved into the stream, default 100ms (a retry's or a schedule's
	// lateness at most) for a stage whose row says Delays or that is not in
	// the stage table; negative (the default of the other stages) disables.
	DelayPoll time.Duration
	// NewGroupAt is where a group the runner creates at start begins: "0"
	// (the default), at the oldest entry kept; "$", at entries written from
	// then on (a webhook receiver added to a running deployment, which
	// wants no day of past events). An existing group goes on where it is,
	// and one recreated after Redis lost it begins at 0: every entry of a
	// stream written since the loss is new.
	NewGroupAt string
	// AliveEvery is how often the process records that it is alive for
	// status (alive.go), default DefaultAliveEvery; it reads stopped three
	// beats after its last one, or at once after a clean shutdown.
	AliveEvery time.Duration
	// StuckAfter is how long a handler may hold one batch, or an entry may
	// stay pending unclaimed, before status reads the stage stuck
	// (stuck.go), default 2×ClaimIdle but at least a minute: a batch that
	// takes longer than ClaimIdle is already past what the runner expects
	// (RetryFor is half of it), and a dead consumer's entries are claimed
	// within 1.25×ClaimIdle. The minute keeps a short --claim-idle (the
	// bench's 3s) from calling a batch slowed by the provider's cap stuck.
	StuckAfter time.Duration
}

// MinKeepEvery is the shortest Options.KeepEvery: a batch in progress is
// kept claimed at most this often, whatever KeepEvery or ClaimIdle says.
const MinKeepEvery = 10 * time.Millisecond

func (o *Options) defaults() {
	if o.Group == "" {
		o.Group = o.Stage
	}
	if o.Consumer == "" {
		host, _ := os.Hostname()
		o.Consumer = host + "-" + strconv.Itoa(os.Getpid())
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.ExpressConcurrency <= 0 {
		o.ExpressConcurrency = max(1, o.Concurrency/2)
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	if o.BatchSize > 10_000 {
		o.BatchSize = 10_000 // one commit script's arguments stay a few MB at most
	}
	if o.Block <= 0 {
		o.Block = 2 * time.Second
	}
	if o.ClaimIdle <= 0 {
		o.ClaimIdle = 30 * time.Second
	}
	def, inTable := StageNamed(o.Stage)
	if o.MaxDeliveries <= 0 {
		o.MaxDeliveries = cmp.Or(def.MaxDeliveries, 10)
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.Retention == 0 {
		o.Retention = 24 * time.Hour
	}
	if o.RetryFor <= 0 {
		o.RetryFor = o.ClaimIdle / 2
	}
	if o.DelayPoll == 0 {
		o.DelayPoll = 100 * time.Millisecond
		if inTable && !def.Delays {
			o.DelayPoll = -1
		}
	}
	if o.AliveEvery <= 0 {
		o.AliveEvery = DefaultAliveEvery
	}
	if o.KeepEvery <= 0 {
		o.KeepEvery = min(o.ClaimIdle/3, 250*time.Millisecond)
	}
	// Clamped, as the claim loop's interval is (claim.go): NewRunner has
	// no error to return. A keep is a Redis script per batch in progress,
	// so KeepEvery 1ns sent them without a pause, and a ClaimIdle under
	// 3ns made a ticker of 0, which panicked at the first batch.
	o.KeepEvery = max(o.KeepEvery, MinKeepEvery)
	if o.StuckAfter <= 0 {
		o.StuckAfter = max(2*o.ClaimIdle, time.Minute)
	}
}

// Runner reads a stage's input stream as one consumer of its group and feeds
// batches to the handler. It owns every XREADGROUP, XACK, XAUTOCLAIM and DLQ
// write of the stage.
type Runner struct {
	rdb     rueidis.Client
	keys    Keys
	opts    Options
	h       Handler
	log     zerolog.Logger
	metrics *Metrics

	down    *outage // quiets the log while Redis is unreachable
	failing *outage // quiets the log while batches keep failing in the handler
	ready   atomic.Bool
	lastErr sync.Map // stream + "/" + entry id → lastError, for dead-letter reasons (noteErrors)
	inHand  sync.Map // stream + "/" + id of the entries handed to a worker and not done
	held    heldBatches
	moved   atomic.Int64 // unix ns of the last commit that acked entries (moved.go)

	retiredSaid atomic.Bool // the log said that the group was retired (recreate)
	retired     atomic.Bool // the group is retired and this runner reads nothing (recreate)
}

// NewRunner builds a runner; Run starts it. metrics may be nil.
func NewRunner(rdb rueidis.Client, keys Keys, opts Options, h Handler, log zerolog.Logger, metrics *Metrics) *Runner {
	opts = opts.Effective(keys)
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	r := &Runner{rdb: rdb, keys: keys, opts: opts, h: h, metrics: metrics,
		log: log.With().Str("stage", opts.Stage).Str("consumer", opts.Consumer).Logger()}
	r.down, r.failing = redisOutage(r.log), handlerFailures(r.log)
	return r
}

// Options returns the effective options (defaults filled in).
func (r *Runner) Options() Options { return r.opts }

// Ready reports whether the runner created its groups and is reading.
func (r *Runner) Ready() bool { return r.ready.Load() }

// Retired reports whether the runner's group was retired while it ran
// (`pushpipe results retire --force`): it reads nothing until a process
// of the group is started anew, which creates the group again.
func (r *Runner) Retired() bool { return r.retired.Load() }

// Run serves until ctx is cancelled, then stops reading, gives in-flight
// batches ShutdownTimeout to finish and returns nil. Unfinished batches stay
// pending (never acked) and another consumer claims them.
func (r *Runner) Run(ctx context.Context) error {
	if err := r.createGroups(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while Redis was away: nothing was read
		}
		return err
	}
	r.alive(ctx) // status shows the stage running from its first read on
	r.ready.Store(true)
	defer r.ready.Store(false)

	// Handlers get their own context: on shutdown they keep running for up to
	// ShutdownTimeout after reading stopped, then are cancelled.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(r.opts.ShutdownTimeout, cancelWork)
		context.AfterFunc(workCtx, func() { t.Stop() })
	})
	defer stop()

	// Unbuffered: readers read only when a handler is free, so nothing read
	// waits in the process for a handler. Each lane has its own queue and
	// read loops: a bulk batch read (or waiting to be handed over) never
	// stands in front of an express one. Express batches also have handlers
	// of their own (ExpressConcurrency): with every shared handler busy on a
	// long bulk batch (deliver under its rate cap), an express entry is still
	// read and handled at once. Shared handlers take express first, but not
	// twice in a row while bulk waits (queues.next).
	work := queues{bulk: make(chan *Batch), express: make(chan *Batch)}
	left := r.leftovers(ctx) // before the first read: what a process before this one left
	var readers, workers sync.WaitGroup
	for _, l := range r.lanes() {
		for _, p := range r.opts.Partitions {
			readers.Go(func() { r.readLoop(ctx, l, p, work.of(l)) })
		}
	}
	readers.Go(func() { r.resumeOwn(ctx, left, work) })
	readers.Go(func() { r.claimLoop(ctx, work) })
	readers.Go(func() { r.maintainLoop(ctx) })
	readers.Go(func() { r.aliveLoop(ctx) })
	if r.opts.DelayPoll > 0 {
		readers.Go(func() { r.delayLoop(ctx) })
	}
	for range r.opts.Concurrency {
		workers.Go(func() {
			for b := range work.next() {
				r.process(workCtx, b)
			}
		})
	}
	if r.opts.Express {
		for range r.opts.ExpressConcurrency {
			workers.Go(func() {
				for b := range work.express {
					r.process(workCtx, b)
				}
			})
		}
	}
	r.log.Info().Int("partitions", len(r.opts.Partitions)).Int("concurrency", r.opts.Concurrency).Msg("stage running")
	readers.Wait()
	close(work.bulk)
	close(work.express)
	workers.Wait()
	r.markStopped()
	r.log.Info().Msg("stage stopped")
	return nil
}

// createGroups joins the runner's group on every stream it reads, but not
// a retired one (`pushpipe results retire`): a start is not the operator
// bringing a receiver back. Its pod restarted for any reason (a drain, an
// OOM kill, a node lost) would have created the group anew from the
// oldest entry kept, POSTing the whole retention window to the receiver
// being retired, and holding results for it again. It starts idle and not
// ready instead, as a process running when its group was retired stays
// (recreate), until `pushpipe results unretire` brings the group back.
//
// While Redis, or the cluster master of one of its streams, is unreachable
// it waits, as a running stage does (untilReachable): a stage started
// during a failover, or beside a Redis that starts with it, exited with
// the dial error, and under a supervisor that was a restart loop for the
// length of the outage. The runner is not Ready meanwhile.
func (r *Runner) createGroups(ctx context.Context) error {
	var at int64
	err := r.untilReachable(ctx, func(ctx context.Context) (err error) {
		at, err = r.rdb.Do(ctx, r.rdb.B().Hget().Key(r.keys.Retired()).Field(r.opts.Group).Build()).AsInt64()
		return err
	})
	if err == nil {
		r.retired.Store(true)
		r.retiredSaid.Store(true)
		r.log.Error().Str("group", r.opts.Group).Time("retired_at", time.UnixMilli(at)).Msg("this process's consumer group is retired " +
			"(pushpipe results retire): it reads nothing. If the receiver is retired for good, stop it for good (delete its Deployment); " +
			"to bring it back, run `pushpipe results unretire " + r.opts.Group + "` (new events only; --from start for every event results keeps). " +
			"Meanwhile a process that runs nothing else answers 503 on /readyz (group retired)")
		return nil
	}
	if !rueidis.IsRedisNil(err) {
		return fmt.Errorf("create groups: %w", err)
	}
	for _, l := range r.lanes() {
		for _, p := range r.opts.Partitions {
			join := func(ctx context.Context) error { return r.join(ctx, r.stream(l, p), r.opts.NewGroupAt) }
			if err := r.untilReachable(ctx, join); err != nil {
				return err
			}
		}
	}
	return nil
}

// reachTry bounds one try of untilReachable: far above a call's time on a
// Redis that answers, short enough to say soon that it does not.
const reachTry = 2 * time.Second

// untilReachable runs call, a Redis call of the runner's, again with
// backoff while its error says Redis is unreachable (unreachable: refused,
// reset, loading, CLUSTERDOWN), and says so once per outage (r.down), not
// per try. It returns call's error at once when Redis answered it (a
// WRONGTYPE, a nil reply), and ctx's once ctx ends. call must be
// idempotent.
//
// Each try has reachTry: rueidis tries a read again by itself, for as long
// as its context lasts, so a read to a Redis that is down never returned
// and the stage waited without a word.
func (r *Runner) untilReachable(ctx context.Context, call func(context.Context) error) error {
	b := newBackoff(50*time.Millisecond, 5*time.Second)
	for {
		try, cancel := context.WithTimeout(ctx, reachTry)
		err := call(try)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case !unreachable(err):
			r.down.answered()
			return err
		}
		r.down.quiet(err)
		b.sleep(ctx)
	}
}

// lanes are the lanes the runner reads, express first.
func (r *Runner) lanes() []Lane {
	if r.opts.Express {
		return []Lane{Express, Bulk}
	}
	return []Lane{Bulk}
}

// stream is the partition key of lane l of the input in partition p.
func (r *Runner) stream(l Lane, p int) string { return r.keys.Stream(l.Stream(r.opts.Stream), p) }

// label is the metrics' stage label of lane l: the stage, or stage-express.
func (r *Runner) label(l Lane) string { return l.Stream(r.opts.Stage) }

// series are the metrics' label values of lane l in partition p.
func (r *Runner) series(l Lane, p int) []string { return series(r.label(l), r.opts.Group, p) }

// queues hand read batches to handlers, one per lane.
type queues struct{ bulk, express chan *Batch }

func (q queues) of(l Lane) chan *Batch {
	if l == Express {
		return q.express
	}
	return q.bulk
}

// next yields batches to a shared handler until both queues are closed: an
// express one whenever one is waiting, except that right after an express
// batch a bulk one that is waiting goes first. Express has handlers of its
// own besides, so it waits behind bulk only when it has more work than all
// of them and half the shared ones; bulk keeps half of the shared handlers
// however busy express is, where strict priority let a high-priority
// campaign (it rides the express lane) stop every normal one while it ran.
func (q queues) next() func(yield func(*Batch) bool) {
	return func(yield func(*Batch) bool) {
		chans := [2]chan *Batch{Bulk: q.bulk, Express: q.express}
		last := Bulk
		for chans[Bulk] != nil || chans[Express] != nil {
			order := [2]Lane{Express, Bulk}
			if last == Express {
				order = [2]Lane{Bulk, Express}
			}
			var (
				b    *Batch
				ok   bool
				from Lane
				got  bool
			)
			for _, l := range order {
				if b, ok, got = tryRecv(chans[l]); got {
					from = l
					break
				}
			}
			if !got {
				select {
				case b, ok = <-chans[Express]:
					from = Express
				case b, ok = <-chans[Bulk]:
					from = Bulk
				}
			}
			if !ok {
				chans[from] = nil // closed
				continue
			}
			last = from
			if !yield(b) {
				return
			}
		}
	}
}

// tryRecv receives from c if a batch (or its close) is waiting; a nil c
// never has one.
func tryRecv(c chan *Batch) (b *Batch, ok, got bool) {
	select {
	case b, ok = <-c:
		return b, ok, true
	default:
		return nil, false, false
	}
}

// join creates the group on stream, beginning at id at if it is new, and
// this runner's consumer in it.
// Redis 7.0 creates a consumer only when a read or claim hands it entries,
// so a stage blocked on a quiet stream was not listed at all: status showed
// a running ingest with 0 consumers until its first device.
func (r *Runner) join(ctx context.Context, stream, at string) error {
	if err := createGroupAt(ctx, r.rdb, stream, r.opts.Group, at); err != nil {
		return err
	}
	cmd := r.rdb.B().XgroupCreateconsumer().Key(stream).Group(r.opts.Group).Consumer(r.opts.Consumer).Build()
	if err := r.rdb.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("create consumer %s in group %s on %s: %w", r.opts.Consumer, r.opts.Group, stream, err)
	}
	return nil
}

// CreateGroup creates a consumer group at id 0 (never "$": entries written
// before the first consumer started must not be skipped), with the stream.
func CreateGroup(ctx context.Context, c rueidis.Client, stream, group string) error {
	return createGroupAt(ctx, c, stream, group, "0")
}

// createGroupAt is CreateGroup beginning at id at ("0" if empty) when the
// group is new; an existing group is left where it is.
func createGroupAt(ctx context.Context, c rueidis.Client, stream, group, at string) error {
	if at == "" {
		at = "0"
	}
	err := c.Do(ctx, c.B().XgroupCreate().Key(stream).Group(group).Id(at).Mkstream().Build()).Error()
	if err != nil {
		if re, ok := rueidis.IsRedisErr(err); ok && re.IsBusyGroup() {
			return nil
		}
		return fmt.Errorf("create group %s on %s: %w", group, stream, err)
	}
	return nil
}

// readLoop reads new entries of one partition and hands them to the workers.
func (r *Runner) readLoop(ctx context.Context, l Lane, p int, work chan<- *Batch) {
	stream := r.stream(l, p)
	backoff := newBackoff(50*time.Millisecond, 5*time.Second)
	for ctx.Err() == nil {
		cmd := r.rdb.B().Xreadgroup().Group(r.opts.Group, r.opts.Consumer).Count(int64(r.opts.BatchSize)).
			Block(r.opts.Block.Milliseconds()).Streams().Key(stream).Id(">").Build()
		entries, err := xreadEntries(r.rdb.Do(ctx, cmd))
		if err == nil || rueidis.IsRedisNil(err) {
			r.down.answered()
			r.unretired()
		}
		if err != nil {
			if rueidis.IsRedisNil(err) || ctx.Err() != nil {
				continue
			}
			r.onReadError(ctx, stream, err, backoff)
			continue
		}
		backoff.reset()
		if len(entries) == 0 {
			continue
		}
		if len(entries) < r.opts.BatchSize && r.opts.Linger > 0 {
			entries = r.linger(ctx, stream, entries)
		}
		r.metrics.read(r.series(l, p), len(entries))
		if !r.handOff(ctx, work, &Batch{Stream: stream, Partition: p, Lane: l, Entries: entries}) {
			return // read but never acked: they stay pending and are claimed later
		}
	}
}

// linger waits Linger, then reads what has come since, up to BatchSize
// entries in all, without blocking. A failed read hands over what it has:
// the next read meets the error again, and onReadError deals with it. The
// entries read first are already pending for this consumer; a wait far
// below ClaimIdle leaves them ours.
func (r *Runner) linger(ctx context.Context, stream string, entries []Entry) []Entry {
	t := time.NewTimer(r.opts.Linger)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return entries
	case <-t.C:
	}
	cmd := r.rdb.B().Xreadgroup().Group(r.opts.Group, r.opts.Consumer).Count(int64(r.opts.BatchSize - len(entries))).
		Streams().Key(stream).Id(">").Build()
	more, err := xreadEntries(r.rdb.Do(ctx, cmd))
	if err != nil {
		return entries
	}
	return append(entries, more...)
}

func (r *Runner) onReadError(ctx context.Context, stream string, err error, b *backoff) {
	if isNoGroup(err) {
		cerr := r.recreate(ctx, stream)
		if cerr == nil {
			return
		}
		if errors.Is(cerr, errRetired) {
			b.sleep(ctx)
			return
		}
	}
	if !r.down.quiet(err) {
		r.log.Warn().Err(err).Str("stream", stream).Msg("read failed, retrying")
	}
	b.sleep(ctx)
}

// errRetired is a group `pushpipe results retire` removed while this
// process ran.
var errRetired = errors.New("consumer group retired")

// recreate makes the group again on stream after Redis lost it (a restart
// without persistence, a deleted stream), from its start, rather than
// stall; but not a group retired on purpose (RetireGroup --force while this
// process ran): recreated, it would read every entry the stream keeps
// again, a webhook receiver getting the whole retention window POSTed
// anew. Then the process reads nothing, says so once, reports Retired (its
// /readyz answers 503) and waits to be stopped. It does not exit: under a
// Deployment (or any supervisor that restarts) an exit is a restart, over
// and over. Idle and not ready, the pod shows 0/1 and stays put (its
// /healthz still answers: no liveness restart) until its Deployment is
// deleted; a process started meanwhile stays idle too (createGroups). When
// `pushpipe results unretire` brings the group back, its next read finds
// it (unretired).
func (r *Runner) recreate(ctx context.Context, stream string) error {
	retired, err := r.rdb.Do(ctx, r.rdb.B().Hexists().Key(r.keys.Retired()).Field(r.opts.Group).Build()).AsBool()
	if err != nil {
		return err
	}
	if retired {
		r.retired.Store(true)
		if r.retiredSaid.CompareAndSwap(false, true) {
			r.log.Error().Str("group", r.opts.Group).Msg("this process's consumer group was retired (pushpipe results retire): it reads nothing more; stop it " +
				"for good (delete its Deployment); restarted, it stays idle until `pushpipe results unretire " + r.opts.Group + "`. " +
				"Meanwhile a process that runs nothing else answers 503 on /readyz (group retired)")
		}
		return errRetired
	}
	if err := r.join(ctx, stream, "0"); err != nil {
		return err
	}
	r.retired.Store(false)
	r.retiredSaid.Store(false) // retired again later, it says so again
	r.log.Warn().Str("stream", stream).Msg("consumer group was missing, recreated")
	return nil
}

// unretired notes a read that found the group: a retired group is back
// (`pushpipe results unretire`), and the runner reads it as any other.
func (r *Runner) unretired() {
	if r.retired.Load() && r.retired.CompareAndSwap(true, false) {
		r.retiredSaid.Store(false) // retired again later, it says so again
		r.log.Info().Str("group", r.opts.Group).Msg("consumer group is back (pushpipe results unretire): reading")
	}
}

func isNoGroup(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	return ok && strings.HasPrefix(re.Error(), "NOGROUP")
}

// xreadEntries decodes the reply of an XREADGROUP of one stream straight
// into entries: a map of streams (RESP3) or an array of [stream, entries]
// pairs (RESP2), holding one stream here.
func xreadEntries(res rueidis.RedisResult) ([]Entry, error) {
	msg, err := res.ToMessage()
	if err != nil {
		return nil, err
	}
	var xs []rueidis.RedisMessage
	if msg.IsMap() {
		m, err := msg.ToMap()
		if err != nil {
			return nil, err
		}
		for _, v := range m {
			if xs, err = v.ToArray(); err != nil {
				return nil, err
			}
		}
	} else {
		streams, err := msg.ToArray()
		if err != nil {
			return nil, err
		}
		for _, s := range streams {
			pair, err := s.ToArray()
			if err != nil || len(pair) != 2 {
				return nil, fmt.Errorf("xreadgroup reply: a stream is not a [name, entries] pair")
			}
			if xs, err = pair[1].ToArray(); err != nil {
				return nil, err
			}
		}
	}
	return rangeEntries(xs)
}

// rangeEntries decodes [id, [field, value...]] pairs (XRANGE, XREADGROUP,
// XAUTOCLAIM), skipping entries deleted while pending (nil fields).
func rangeEntries(xs []rueidis.RedisMessage) ([]Entry, error) {
	out := make([]Entry, 0, len(xs))
	for i := range xs {
		pair, err := xs[i].ToArray()
		if err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("stream entry is not an [id, fields] pair")
		}
		id, err := pair[0].ToString()
		if err != nil {
			return nil, fmt.Errorf("stream entry id: %w", err)
		}
		if pair[1].IsNil() {
			continue // deleted while pending
		}
		fv, err := pair[1].ToArray()
		if err != nil || len(fv)%2 != 0 {
			return nil, fmt.Errorf("stream entry %s: fields are not field/value pairs", id)
		}
		fields := make(map[string]string, len(fv)/2)
		for j := 0; j < len(fv); j += 2 {
			k, _ := fv[j].ToString()
			v, _ := fv[j+1].ToString()
			fields[k] = v
		}
		out = append(out, Entry{ID: id, Fields: fields})
	}
	return out, nil
}

// process runs the handler on a batch, retrying whole-batch failures with
// backoff for RetryFor, then commits. The batch stays claimed (handOff) until
// process returns, and no longer: a batch left pending must go idle so that
// it is claimed again and, if poison, dead-lettered.
func (r *Runner) process(ctx context.Context, b *Batch) {
	if b.release != nil {
		defer b.release()
	}
	defer r.held.hold(b)()
	backoff := newBackoff(100*time.Millisecond, 5*time.Second)
	deadline := time.Now().Add(r.opts.RetryFor)
	for attempt := 1; ctx.Err() == nil; attempt++ {
		b.reset()
		start := time.Now()
		err := r.handle(ctx, b)
		r.metrics.handled(r.series(b.Lane, b.Partition), time.Since(start), err)
		var panicked *panicError
		if errors.As(err, &panicked) && len(b.Entries) > 1 {
			// Most likely one entry's input found the bug: handled one by
			// one, the others go through and it alone is retried and, in
			// the end, dead-lettered with the panic as its reason.
			r.processEach(ctx, b)
			return
		}
		var perm *PermanentError
		if errors.As(err, &perm) {
			for i := range b.Entries {
				b.DeadLetter(i, err)
			}
			err = nil
			b.emits, b.failed = nil, nil
		}
		if err == nil {
			acked, cerr := r.commit(ctx, b)
			if cerr == nil {
				r.failing.answered()
				r.metrics.acked(r.series(b.Lane, b.Partition), int(acked))
				if acked > 0 {
					r.markMoved()
				}
				// An entry that failed before came back by a claim, on
				// whichever consumer: the notes of a claimed batch's entries
				// done now go, the ones another consumer wrote too.
				notes := map[string]error{}
				var done []string
				for i, e := range b.Entries {
					if ferr, failed := b.failed[i]; failed {
						notes[e.ID] = ferr
						continue
					}
					if _, had := r.lastErr.LoadAndDelete(b.Stream + "/" + e.ID); had || b.claimed {
						done = append(done, e.ID)
					}
				}
				r.noteErrors(ctx, b.Stream, notes, done)
				return
			}
			if errors.Is(cerr, ErrLostOwnership) {
				r.log.Warn().Str("stream", b.Stream).Msg("batch was claimed by another consumer while handled; dropped")
				return
			}
			err = cerr
		}
		if b.IsLost() {
			// Someone else owns (some of) these entries now, or Redis lost
			// them: retrying here would race the new owner.
			r.log.Warn().Err(err).Str("stream", b.Stream).Msg("batch no longer ours; dropped")
			return
		}
		if time.Now().After(deadline) && !stopping(b) && ctx.Err() == nil && r.outlast(ctx, b, deadline.Add(-r.opts.RetryFor).UnixNano()) {
			deadline = time.Now().Add(r.opts.RetryFor) // Redis was what failed
			continue
		}
		giveUp := stopping(b) || time.Now().After(deadline) || ctx.Err() != nil
		if giveUp {
			// Left pending: whoever claims the entries next (this process
			// or another, or this one restarted) says why if it
			// dead-letters them.
			notes := make(map[string]error, len(b.Entries))
			for _, e := range b.Entries {
				notes[e.ID] = err
			}
			r.noteErrors(ctx, b.Stream, notes, nil)
		}
		if stopping(b) {
			r.log.Info().Err(err).Str("stream", b.Stream).Int("entries", len(b.Entries)).
				Msg("shutting down: batch left pending for whoever claims it")
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			// Left to XAUTOCLAIM: its entries are claimed once idle
			// ClaimIdle, and redelivered, dead-lettered in the end if
			// poison. (A batch Redis failed is held instead: outlast.)
			r.log.Error().Err(err).Str("stream", b.Stream).Int("entries", len(b.Entries)).Int("attempts", attempt).
				Msg("batch failed; left pending for a later claim")
			return
		}
		// Not through r.down: a handler's error may be PostgreSQL's or a
		// provider's, and a dial error does not say whose. Logged once a
		// spell (r.failing), not once a batch and retry.
		r.failing.quiet(err)
		backoff.sleep(ctx)
	}
}

// handle runs the handler on b, turning a panic into b's error: a handler
// that panics on some input would otherwise take the process down (under
// `pushpipe all`, every stage) and again after each restart, since the
// entry is redelivered, repeating the sends in flight each time (deliver).
// As an error, the entry is retried, claimed and dead-lettered like any
// entry that keeps failing (DESIGN, guarantee 8).
func (r *Runner) handle(ctx context.Context, b *Batch) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error().Str("stream", b.Stream).Int("entries", len(b.Entries)).Interface("panic", p).
				Bytes("stack", debug.Stack()).Msg("handler panicked")
			err = &panicError{p}
		}
	}()
	return r.h.Handle(ctx, b)
}

// panicError is a handler's panic, as the error of its batch.
type panicError struct{ p any }

// Panic is the error a handler returns for a panic it recovered in a
// goroutine of its own (the runner can recover only the handler's): the
// runner treats it as the handler's panic, so the entry that found the bug
// is retried alone and in the end dead-lettered with the panic as its
// reason, and the process goes on.
func Panic(p any) error { return &panicError{p} }

func (e *panicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.p) }

// processEach processes b's entries as batches of one, in order, while b is
// still this consumer's: b stays claimed (its release is its caller's), and
// what is not processed stays pending for a later claim.
func (r *Runner) processEach(ctx context.Context, b *Batch) {
	for _, e := range b.Entries {
		if ctx.Err() != nil || b.IsLost() || stopping(b) {
			return
		}
		r.process(ctx, &Batch{Stream: b.Stream, Partition: b.Partition, Lane: b.Lane, Entries: []Entry{e},
			rdb: b.rdb, lost: b.lost, stop: b.stop, claimed: b.claimed, parent: b})
	}
}

// lastError is the last handler error of an entry, kept to say why it was
// dead-lettered if it comes back too often.
type lastError struct {
	msg string
	at  time.Time
}

// noteErrorsTimeout bounds the write of the notes of a batch left pending,
// which goes out even when the handlers' context ended (shutdown).
const noteErrorsTimeout = 5 * time.Second

// noteErrors records why entries of stream failed and are left pending
// (notes), and forgets the notes of entries done since (done), in this
// process (lastErr) and in Redis (errorsKey): the consumer that finds an
// entry delivered too often is often not the one that saw it fail (another
// process claimed it, or this one restarted), and the dead letter must
// still say why. Best effort: without Redis, the reason is the local one.
func (r *Runner) noteErrors(ctx context.Context, stream string, notes map[string]error, done []string) {
	if len(notes) == 0 && len(done) == 0 {
		return
	}
	now := time.Now()
	key := errorsKey(stream)
	var cmds rueidis.Commands
	if len(notes) > 0 {
		hset := r.rdb.B().Hset().Key(key).FieldValue()
		for id, err := range notes {
			r.lastErr.Store(stream+"/"+id, lastError{err.Error(), now})
			hset = hset.FieldValue(id, err.Error())
		}
		cmds = append(cmds, hset.Build(),
			r.rdb.B().Pexpire().Key(key).Milliseconds(r.errorHorizon().Milliseconds()).Build())
	}
	if len(done) > 0 {
		cmds = append(cmds, r.rdb.B().Hdel().Key(key).Field(done...).Build())
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), noteErrorsTimeout)
	defer cancel()
	for _, res := range r.rdb.DoMulti(wctx, cmds...) {
		if err := res.Error(); err != nil {
			r.log.Warn().Err(err).Str("stream", stream).Msg("could not keep the entries' errors in Redis")
			return
		}
	}
}

// errorHorizon is how long a note may still be needed: an entry failing
// every delivery is dead-lettered within MaxDeliveries claims.
func (r *Runner) errorHorizon() time.Duration {
	return max(r.opts.ClaimIdle*time.Duration(r.opts.MaxDeliveries+1), 10*time.Minute)
}

// forgetErrors drops notes no claim will need: the entry was acked since by
// another consumer (or this one in a later batch), or it would have been
// dead-lettered long ago. Without it, entries another consumer finished
// would stay here for the life of the process.
func (r *Runner) forgetErrors(now time.Time) {
	horizon := r.errorHorizon()
	r.lastErr.Range(func(id, v any) bool {
		if now.Sub(v.(lastError).at) > horizon {
			r.lastErr.Delete(id)
		}
		return true
	})
}

func stopping(b *Batch) bool {
	select {
	case <-b.stop:
		return true
	default:
		return false
	}
}

// backoff is exponential with full jitter.
type backoff struct {
	base, max, cur time.Duration
}

func newBackoff(base, max time.Duration) *backoff { return &backoff{base: base, max: max, cur: base} }

func (b *backoff) reset() { b.cur = b.base }

func (b *backoff) sleep(ctx context.Context) {
	d := time.Duration(rand.Int64N(int64(b.cur)) + 1)
	b.cur = min(b.cur*2, b.max)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
