package deliver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
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
	sem       chan struct{} // one slot per provider request in flight
	failed    sync.Map      // campaign id → reason, once a campaign failed
}

var _ pipeline.Handler = (*Handler)(nil)

// New builds the stage from cfg.
func New(cfg Config) (*Handler, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("deliver: %w", err)
	}
	return &Handler{
		cfg: cfg, rdb: cfg.Redis, db: cfg.DB, keys: cfg.Keys, senders: cfg.Senders,
		log:       cfg.Log.With().Str("stage", "deliver").Logger(),
		metrics:   newMetrics(cfg.Metrics),
		campaigns: newCampaigns(cfg.DB),
		limiter:   newLimiter(cfg.Redis, cfg.Keys, cfg.TPS, cfg.LimitMargin),
		sem:       make(chan struct{}, cfg.InFlight),
	}, nil
}

// Handle delivers a batch of deliver entries and settles it in one atomic
// step: users with transient failures go to the retry set, users whose
// retry budget is spent go to the DLQ, the campaign counters are added and
// the entries acked. Malformed entries are dead-lettered and acked with it.
func (h *Handler) Handle(ctx context.Context, b *pipeline.Batch) error {
	var (
		targets []target
		bad     []deadEntry
	)
	for _, e := range b.Entries {
		c, users, err := h.parse(ctx, e)
		switch {
		case isPermanent(err):
			bad = append(bad, deadEntry{id: e.ID, fields: e.Fields, err: err, deliveries: 1})
			continue
		case err != nil:
			return err
		}
		for _, u := range users {
			targets = append(targets, target{c: c, user: u})
		}
	}

	stop := h.keepClaimed(ctx, b)
	results, err := h.deliverTargets(ctx, b.Partition, targets)
	stop()
	if err != nil {
		return err
	}
	s := h.settlement(targets, results)
	bad = append(bad, s.dead...)
	if err := h.deadLetter(ctx, b.Stream, bad); err != nil {
		return err
	}
	if err := h.ack(ctx, b, s); err != nil {
		if errors.Is(err, pipeline.ErrLostOwnership) {
			h.log.Warn().Str("stream", b.Stream).Msg("batch was claimed by another consumer while sending; left to it")
			b.Settled()
			return nil
		}
		return err
	}
	b.Settled()
	return nil
}

// parse reads one deliver entry. Errors wrapped with permanent cannot be
// fixed by a retry.
func (h *Handler) parse(ctx context.Context, e pipeline.Entry) (*campaign, []int64, error) {
	id := e.Fields[pipeline.FieldCampaign]
	if id == "" {
		return nil, nil, permanent(errors.New("deliver entry without a campaign"))
	}
	users, err := pipeline.DecodeIDs(e.Fields[pipeline.FieldUsers])
	if err != nil {
		return nil, nil, permanent(fmt.Errorf("deliver entry users: %w", err))
	}
	c, err := h.campaigns.get(ctx, id)
	if errors.Is(err, errNoCampaign) {
		return nil, nil, permanent(err)
	}
	if err != nil {
		return nil, nil, err
	}
	return c, users, nil
}

// settlement is how a round of targets ends: who is retried, who is dead,
// what the counters get.
type settlement struct {
	retries []retry     // users to try again
	dead    []deadEntry // users whose budget is spent, per campaign
	done    []int64     // per target: users_done to add (0 or 1)
	failed  []int64     // per target: devices failed for good
	counts  map[string]*campaignCount
}

type retry struct {
	member string
	delay  time.Duration
}

type campaignCount struct{ usersDone, failed int64 }

// settlement decides the end of a round for each target: terminal (done),
// another attempt later (retry), or the budget is spent (failed devices, the
// user to the DLQ).
func (h *Handler) settlement(targets []target, results []userResult) settlement {
	s := settlement{
		done: make([]int64, len(targets)), failed: make([]int64, len(targets)),
		retries: make([]retry, len(targets)), counts: map[string]*campaignCount{},
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
			s.done[i], s.failed[i] = 1, int64(r.retry)
			exhausted[t.c] = append(exhausted[t.c], t.user)
			reasons[t.c] = r.reason
		}
		cc := s.counts[t.c.ID]
		if cc == nil {
			cc = &campaignCount{}
			s.counts[t.c.ID] = cc
		}
		cc.usersDone += s.done[i]
		cc.failed += s.failed[i]
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

// ack settles a batch of stream entries atomically (see ackScript).
func (h *Handler) ack(ctx context.Context, b *pipeline.Batch, s settlement) error {
	keys := []string{b.Stream, h.keys.Retry(b.Partition)}
	args := []string{h.cfg.Group, h.cfg.Consumer, strconv.Itoa(len(b.Entries))}
	for _, e := range b.Entries {
		args = append(args, e.ID)
	}
	nretry := 0
	for _, r := range s.retries {
		if r.member != "" {
			nretry++
		}
	}
	args = append(args, strconv.Itoa(nretry))
	for _, r := range s.retries {
		if r.member != "" {
			args = append(args, r.member, strconv.FormatInt(r.delay.Milliseconds(), 10))
		}
	}
	var incrs []string
	for id, cc := range s.counts {
		keys = append(keys, h.keys.Stats(b.Partition, id))
		idx := strconv.Itoa(len(keys))
		if cc.usersDone > 0 {
			incrs = append(incrs, idx, pipeline.StatUsersDone, strconv.FormatInt(cc.usersDone, 10))
		}
		if cc.failed > 0 {
			incrs = append(incrs, idx, pipeline.StatFailed, strconv.FormatInt(cc.failed, 10))
		}
	}
	args = append(args, strconv.Itoa(len(incrs)/3))
	args = append(args, incrs...)
	n, err := ackScript.Exec(ctx, h.rdb, keys, args).AsInt64()
	if err != nil {
		return fmt.Errorf("settle %s: %w", b.Stream, err)
	}
	if n < 0 {
		return pipeline.ErrLostOwnership
	}
	return nil
}

// keepClaimed resets the idle time of the batch's entries every third of the
// claim idle time until stop is called, so a batch slowed down by the rate
// limit is not taken over (and sent twice) by another consumer.
func (h *Handler) keepClaimed(ctx context.Context, b *pipeline.Batch) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(h.cfg.ClaimIdle / 3)
		defer t.Stop()
		args := []string{h.cfg.Group, h.cfg.Consumer}
		for _, e := range b.Entries {
			args = append(args, e.ID)
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := keepScript.Exec(ctx, h.rdb, []string{b.Stream}, args).Error(); err != nil && ctx.Err() == nil {
				h.log.Warn().Err(err).Str("stream", b.Stream).Msg("could not keep the batch claimed")
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// permanentError marks input that no retry can fix.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func permanent(err error) error { return permanentError{err} }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
