package deliver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// target is one user of a campaign to deliver to.
type target struct {
	c      *campaign
	user   int64
	rounds int // send rounds already made for this user (pipeline.FieldRounds)
	// force resends to devices already marked (replay --force); the marks
	// still keep every device counted once. forced, ascending, are single
	// devices to resend so (pipeline.FieldForceDevices): those a forced
	// round left to retry.
	force  bool
	forced []int64
	// forcedSent, set when force or forced is, is the hash of the devices
	// its entry's forced rounds marked (Keys.ForcedSent, forcedsent.go).
	forcedSent string
	entry      int // index of its entry in the batch (stream targets)
	// raw is a message's raw token (rawtokens.go): the target's one device,
	// not looked up; user is then its id within the message.
	raw *device
	// slotMs is the slot a capped campaign's entry was put off to (pace.go),
	// 0 if it was not; slotRate the campaign's rate it was reserved at (0:
	// not known, an entry put off before the field).
	slotMs   int64
	slotRate int
}

// userResult is what became of a target's devices in one round.
type userResult struct {
	// retry counts devices that failed transiently: the user is not
	// terminal yet. retryAfter is the longest Retry-After among them.
	retry      int
	retryAfter time.Duration
	reason     string
	retried    []device // those devices
	// canceled counts devices left unsent because the campaign was
	// canceled: the user is not done, so a canceled campaign's progress
	// shows the people it reached, not everyone.
	canceled int
	// later is set when the target's entry was put off to its slot
	// (pace.go): no device was sent this round.
	later *putOff
	// bare: the user has no device of the campaign's app (none registered,
	// or none valid): done at once, and counted in no_devices.
	bare bool
}

// deliverTargets sends the campaign to every device of the targets that is
// not done yet, at most InFlight at a time and under each provider's rate
// limit, and reports per target. Each
// device that reaches a terminal state is marked (and counted) before its
// in-flight slot is released, so a crash repeats at most InFlight requests.
// An error means Redis or PostgreSQL failed, the batch was lost (b.Lost) or
// the process is stopping (b.Stopping): it starts no more sends then;
// whatever was marked stays.
func (h *Handler) deliverTargets(ctx context.Context, b *pipeline.Batch, targets []target, fetched *fetched) ([]userResult, error) {
	p := b.Partition
	devs, err := h.devicesOf(ctx, targets, fetched)
	if err != nil {
		return nil, err
	}
	pending, err := h.skipDone(ctx, p, targets, devs, fetched)
	if err != nil {
		return nil, err
	}
	rates, err := h.ratesOf(ctx, targets)
	if err != nil {
		return nil, err
	}
	later, err := h.pace(ctx, b.Entries, targets, pending, rates)
	if err != nil {
		return nil, err
	}

	// One feeder per provider and app.
	r := h.newRound(ctx, b, len(targets))
	defer r.end()
	r.trackDone(pending)
	for i, t := range targets {
		r.results[i].bare = len(devs[i]) == 0 // before the feeders: read unlocked after
		r.noteForced(i, t)
	}
	for i, t := range targets {
		if l, ok := later[t.entry]; ok {
			r.results[i].later = &l
			r.left[i].Store(1) // not done: never counted early
		}
	}
	sizes := map[queueKey]int{}
	for i, t := range targets {
		for _, d := range pending[i] {
			sizes[queueOf(t.c, rates[t.c] > 0, d)]++
		}
	}
	queues := make(map[queueKey][]job, len(sizes))
	for k, n := range sizes {
		queues[k] = make([]job, 0, n)
	}
	for i, t := range targets {
		for _, d := range pending[i] {
			k := queueOf(t.c, rates[t.c] > 0, d)
			queues[k] = append(queues[k], job{i, t.c, d})
		}
	}
	stopEarly := r.countDoneEarly(targets)
	var feeders sync.WaitGroup
	for k, jobs := range queues {
		l := h.lane(b.Lane, k.platform).forApp(k.app, h.metrics)
		feeders.Go(func() { r.feed(l, jobs) })
	}
	feeders.Wait()
	r.sends.Wait()
	stopEarly()
	if err := r.err(); err != nil {
		return nil, err
	}
	h.metrics.observeSpan(b.Lane, r.firstSent.Load(), targets)
	// Devices of a campaign that failed or expired meanwhile were not sent:
	// they are marked failed, in one call per campaign and reason.
	for k, devs := range r.skipped {
		if err := h.markUnsent(ctx, p, k.c, k.reason, devs...); err != nil {
			return nil, err
		}
		outcome := "failed_campaign"
		if k.reason == ReasonExpired {
			outcome = "expired"
		}
		h.metrics.sends.WithLabelValues("none", outcome, b.Lane.String()).Add(float64(len(devs)))
	}
	return r.results, nil
}

// emitFunc is pipeline.Batch.EmitNow: an invalidation goes to ingest as soon
// as the provider said so, before the device is marked.
type emitFunc func(ctx context.Context, msgs ...pipeline.Message) error

// queueKey is a feeder's queue: a provider and app (a platform has one
// provider).
type queueKey struct {
	platform push.Platform
	app      string
	capped   string // a capped campaign's id: its jobs, which wait for its permits, have a feeder of their own
}

// queueOf is the feeder queue of device d of campaign c, capped or not at
// the round's start. A capped campaign's jobs are queued apart: behind
// them, another campaign's jobs of the same round would wait for the
// capped one's permits.
func queueOf(c *campaign, capped bool, d device) queueKey {
	k := queueKey{platform: d.platform, app: c.App}
	if capped {
		k.capped = c.ID
	}
	return k
}

// errStopping ends a batch early when the process is shutting down. It is
// pipeline.ErrStopping: the stop, not the entries, left them, so the runner
// gives back the delivery that brought them (a rolling restart must not walk
// healthy entries toward --max-deliveries and the DLQ), and whoever claims
// them sends only what is unsent.
var errStopping = fmt.Errorf("deliver: %w", pipeline.ErrStopping)

// errBatchLost ends a batch early once its entries are no longer this
// consumer's (pipeline.Batch.Lost): their new owner sends what is unsent.
var errBatchLost = errors.New("batch no longer ours; left to its new owner")

// devicesOf loads the valid tokens of every target, one query per app, but
// for the targets whose campaign's tokens came with its row (fetched, by
// campaign, sorted by user: parseAll): the devices of targets[i] are the
// window out[i].
func (h *Handler) devicesOf(ctx context.Context, targets []target, fetched *fetched) ([][]device, error) {
	users := map[string][]int64{}
	out := make([][]device, len(targets))
	next := map[*campaign]int{}
	for i, t := range targets {
		if t.raw != nil {
			out[i] = []device{*t.raw}
			continue
		}
		if ds, ok := fetched.tokensOf(t.c); ok {
			out[i], next[t.c] = devicesOfUser(ds, t.user, next[t.c])
			continue
		}
		users[t.c.App] = append(users[t.c.App], t.user)
	}
	for app, ids := range users {
		ds, err := loadDevices(ctx, h.db, app, ids)
		if err != nil {
			return nil, err
		}
		next := 0
		for i, t := range targets {
			if _, ok := fetched.tokensOf(t.c); t.c.App == app && t.raw == nil && !ok {
				out[i], next = devicesOfUser(ds, t.user, next)
			}
		}
	}
	return out, nil
}
