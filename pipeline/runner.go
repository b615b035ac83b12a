package pipeline

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"
)

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
	letGo   sync.Map // stream + "/" + id of the entries given back at the stop (releaseAtStop)
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
// batches ShutdownTimeout to finish (and a handler that returned by then
// settleTimeout more for its commit) and returns nil. Unfinished batches
// stay pending (never acked) and another consumer claims them; a stop
// counts no delivery for the entries it alone left (ErrStopping).
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
