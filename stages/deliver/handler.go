package deliver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// Handler is the deliver stage: a pipeline.Handler for the deliver stream,
// and (Run) the poller of its delayed retries. Run both.
type Handler struct {
	cfg     Config
	rdb     rueidis.Client
	db      *pgxpool.Pool
	keys    pipeline.Keys
	senders map[push.Platform]push.Sender
	log     zerolog.Logger
	metrics *metrics

	campaigns *campaigns
	limiter   *limiter
	marker    *marker
	slots     *slots   // one per provider request in flight
	workers   *workers // run the sends holding a slot
	lanes     lanes    // per platform: sender, counters, send times
	failed    sync.Map // campaign id → reason, once a campaign failed

	inProgress sync.Map    // stream + "/" + entry id of the entries being handled here
	stopping   atomic.Bool // set when Run's context ends: start no more sends

	life *lifecycle // lifecycle.go: cancels, campaign caps
}

var _ pipeline.Handler = (*Handler)(nil)

// New builds the stage from cfg.
func New(cfg Config) (*Handler, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("deliver: %w", err)
	}
	log := cfg.Log.With().Str("stage", "deliver").Logger()
	m := newMetrics(cfg.Metrics)
	h := &Handler{
		cfg: cfg, rdb: cfg.Redis, db: cfg.DB, keys: cfg.Keys, senders: cfg.Senders,
		log:       log,
		metrics:   m,
		campaigns: newCampaigns(cfg.DB),
		limiter:   newLimiter(cfg.Redis, cfg.Keys, cfg.TPS, log, m.permitsLate),
		slots:     newSlots(cfg.InFlight),
		workers:   newWorkers(),
	}
	h.marker = &marker{h: h}
	h.life = newLifecycle(cfg.Redis, cfg.Keys, log, m.permitsLate)
	return h, nil
}

// Handle delivers a batch of deliver entries and settles each entry in one
// atomic step: users with transient failures go to the retry set, users
// whose retry budget is spent go to the DLQ, the campaign counters are added
// and the entry is acked. Malformed entries are dead-lettered and acked.
func (h *Handler) Handle(ctx context.Context, b *pipeline.Batch) error {
	entries, release, err := h.own(ctx, b)
	if err != nil {
		return err
	}
	defer release()
	b.Settled() // every outcome below is acked by ackScript, or left pending

	type parsed struct {
		c     *campaign
		users []int64
		force bool
	}
	var (
		ok  = make([]parsed, len(entries))
		n   int
		bad []deadEntry
	)
	for i, e := range entries {
		c, users, force, err := h.parse(ctx, e)
		switch {
		case isPermanent(err):
			bad = append(bad, deadEntry{id: e.ID, fields: e.Fields, err: err, deliveries: 1})
			continue
		case err != nil:
			return err
		}
		ok[i] = parsed{c, users, force}
		n += len(users)
	}
	targets := make([]target, 0, n)
	for i, e := range ok {
		for _, u := range e.users {
			targets = append(targets, target{c: e.c, user: u, force: e.force, entry: i})
		}
	}

	// The runner keeps the batch claimed while it is handled, so a batch
	// slowed down by the rate limit is not taken over by another consumer.
	results, err := h.deliverTargets(ctx, b.Partition, targets, b.Lost())
	if err != nil {
		return err
	}
	s := h.settlement(targets, results)
	bad = append(bad, s.dead...)
	if err := h.deadLetter(ctx, b.Stream, bad); err != nil {
		return err
	}
	if err := h.countSettled(ctx, b.Partition, targets, s); err != nil {
		return err
	}
	return h.ack(ctx, b, entries, targets, s)
}

// own picks the entries of b this handler may work on: not already being
// handled in this process (the runner's claim loop can hand out an entry
// again while its first batch waits for a worker), and still pending for
// this consumer (another one may have claimed it meanwhile). Their idle time
// is reset on the way. release must be called when done.
func (h *Handler) own(ctx context.Context, b *pipeline.Batch) (entries []pipeline.Entry, release func(), err error) {
	var mine []pipeline.Entry
	for _, e := range b.Entries {
		if _, busy := h.inProgress.LoadOrStore(b.Stream+"/"+e.ID, true); !busy {
			mine = append(mine, e)
		}
	}
	release = func() {
		for _, e := range mine {
			h.inProgress.Delete(b.Stream + "/" + e.ID)
		}
	}
	if len(mine) == 0 {
		return nil, release, nil
	}
	kept, err := h.keep(ctx, b.Stream, mine)
	if err != nil {
		release()
		return nil, nil, err
	}
	for _, e := range mine {
		if kept[e.ID] {
			entries = append(entries, e)
		}
	}
	return entries, release, nil
}

// parse reads one deliver entry. Errors wrapped with permanent cannot be
// fixed by a retry.
func (h *Handler) parse(ctx context.Context, e pipeline.Entry) (c *campaign, users []int64, force bool, err error) {
	id := e.Fields[pipeline.FieldCampaign]
	if id == "" {
		return nil, nil, false, permanent(errors.New("deliver entry without a campaign"))
	}
	users, err = pipeline.DecodeIDs(e.Fields[pipeline.FieldUsers])
	if err != nil {
		return nil, nil, false, permanent(fmt.Errorf("deliver entry users: %w", err))
	}
	c, err = h.campaigns.get(ctx, id)
	if errors.Is(err, errNoCampaign) {
		return nil, nil, false, permanent(err)
	}
	if err != nil {
		return nil, nil, false, err
	}
	return c, users, e.Fields[pipeline.FieldForce] == "1", nil
}

// settlement is how a round of targets ends, per target: retried, done,
// devices failed for good; and the dead letters of users whose budget is
// spent.
type settlement struct {
	retries []retry     // per target: the next attempt, if any
	done    []int64     // per target: 1 if the user is terminal now
	failed  [][]int64   // per target: ids of devices failed for good
	dead    []deadEntry // users whose budget is spent, per campaign
}

type retry struct {
	member string
	delay  time.Duration
}

// settlement decides the end of a round for each target: terminal (done),
// another attempt later (retry), or the budget is spent (failed devices, the
// user to the DLQ).
func (h *Handler) settlement(targets []target, results []userResult) settlement {
	s := settlement{
		done: make([]int64, len(targets)), failed: make([][]int64, len(targets)), retries: make([]retry, len(targets)),
	}
	exhausted := map[*campaign][]int64{}
	reasons := map[*campaign]string{}
	for i, t := range targets {
		r := results[i]
		rounds := t.rounds + 1
		switch {
		case r.retry == 0:
			s.done[i] = 1
		case rounds < h.cfg.MaxAttempts:
			s.retries[i] = retry{member: retryMember(t.c.ID, t.user, rounds), delay: h.backoff(rounds, r.retryAfter)}
			h.metrics.retries.Inc()
		default:
			s.done[i], s.failed[i] = 1, r.retried
			exhausted[t.c] = append(exhausted[t.c], t.user)
			reasons[t.c] = r.reason
		}
	}
	for c, users := range exhausted {
		s.dead = append(s.dead, deadEntry{
			id: "retry:" + c.ID,
			fields: map[string]string{
				pipeline.FieldCampaign: c.ID,
				pipeline.FieldUsers:    pipeline.EncodeIDs(sortedCopy(users)),
			},
			err:        fmt.Errorf("%d users still failing after %d attempts: %s", len(users), h.cfg.MaxAttempts, reasons[c]),
			deliveries: int64(h.cfg.MaxAttempts),
		})
		h.metrics.deadUsers.Add(float64(len(users)))
	}
	return s
}

// ack settles entries atomically, each on its own (see ackScript): its
// retries and counters apply only if this call is what acks it.
func (h *Handler) ack(ctx context.Context, b *pipeline.Batch, entries []pipeline.Entry, targets []target, s settlement) error {
	if len(entries) == 0 {
		return nil
	}
	// Counters were added by countSettled, once per user and device; the
	// script's counter arguments stay unused here.
	keys := []string{b.Stream, h.keys.Retry(b.Partition)}
	retries := make([][]string, len(entries))
	for i, t := range targets {
		if r := s.retries[i]; r.member != "" {
			retries[t.entry] = append(retries[t.entry], r.member, strconv.FormatInt(r.delay.Milliseconds(), 10))
		}
	}
	args := []string{h.cfg.Group, h.cfg.Consumer}
	for i, e := range entries {
		args = append(args, e.ID, strconv.Itoa(len(retries[i])/2))
		args = append(args, retries[i]...)
		args = append(args, "0")
	}
	n, err := ackScript.Exec(ctx, h.rdb, keys, args).AsInt64()
	if err != nil {
		return fmt.Errorf("settle %s: %w", b.Stream, err)
	}
	if int(n) < len(entries) {
		h.log.Warn().Str("stream", b.Stream).Int("entries", len(entries)).Int64("acked", n).
			Msg("some entries were claimed by another consumer while sending; left to it")
	}
	return nil
}

// keep resets the idle time of entries still pending for this consumer and
// returns which they are.
func (h *Handler) keep(ctx context.Context, stream string, entries []pipeline.Entry) (map[string]bool, error) {
	args := make([]string, 0, 2+len(entries))
	args = append(args, h.cfg.Group, h.cfg.Consumer)
	for _, e := range entries {
		args = append(args, e.ID)
	}
	ids, err := keepScript.Exec(ctx, h.rdb, []string{stream}, args).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("keep %s claimed: %w", stream, err)
	}
	kept := make(map[string]bool, len(ids))
	for _, id := range ids {
		kept[id] = true
	}
	return kept, nil
}

// permanentError marks input that no retry can fix.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func permanent(err error) error { return permanentError{err} }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
