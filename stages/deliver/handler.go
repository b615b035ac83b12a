package deliver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	campaignrow "github.com/pushpipe/pushpipe/pipeline/campaign"
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
	limiter   *limiter // the bulk lane's share of the cap
	marker    *marker  // the bulk lane's
	slots     *slots   // one per provider request in flight, bulk lane
	// The express lane's own share of the cap, in-flight slots and mark
	// writes: its sends never wait for a bulk send's permit or slot
	// (Config.ExpressInFlight), nor its marks for a flush of a campaign's
	// thousands (which is what frees its slots).
	express struct {
		limiter *limiter
		slots   *slots
		marker  *marker
	}
	yield   *yield       // the bulk lane's slots give way while express falls behind
	clock   *redisClock  // how long express entries waited, in Redis's time
	workers *workers     // run the sends holding a slot
	lanes   lanes        // per platform: sender, counters, send times
	failed  sync.Map     // campaign id → reason, once a campaign failed
	outages redisOutages // marksgone.go: rounds during which Redis went away count no one done

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
	bulkTPS, expressTPS := cfg.laneTPS()
	h := &Handler{
		cfg: cfg, rdb: cfg.Redis, db: cfg.DB, keys: cfg.Keys, senders: cfg.Senders,
		log:       log,
		metrics:   m,
		campaigns: newCampaigns(cfg.DB),
		limiter:   newLimiter(cfg.Redis, cfg.Keys, pipeline.Bulk, bulkTPS, log, m.permitsLate),
		slots:     newSlots(cfg.InFlight),
		workers:   newWorkers(),
	}
	h.express.limiter = newLimiter(cfg.Redis, cfg.Keys, pipeline.Express, expressTPS, log, m.permitsLate)
	h.express.limiter.lender = h.limiter
	h.limiter.caps, h.express.limiter.caps = m.rateCap, m.rateCap
	h.express.slots = newSlots(cfg.ExpressInFlight)
	h.yield = newYield(cfg.ExpressTarget, cfg.InFlight, log)
	h.clock = &redisClock{rdb: cfg.Redis}
	if cfg.ExpressTarget > 0 {
		h.slots.limit = h.yield.limit
	}
	m.watchYield(cfg.Metrics, h.yield)
	h.marker = &marker{h: h}
	h.express.marker = &marker{h: h}
	h.life = newLifecycle(cfg.Redis, cfg.DB, cfg.Keys, log, m.permitsLate)
	if cfg.cancelForget > 0 {
		h.life.cancels.Forget = cfg.cancelForget
	}
	h.life.cancels.RecordPoll, h.life.current.RecordPoll = cfg.recordPoll, cfg.recordPoll // zero: the default
	if cfg.AppTPS != nil {
		// An app's cap is the provider's for the app, over both lanes: it
		// is split between them as TPS is. Given to the bulk lane alone,
		// the app's messages and high-priority campaigns went out beside
		// its bulk sends at the express lane's share of TPS, over the cap.
		h.limiter.appTPS = func(app string) int { b, _ := cfg.splitTPS(cfg.AppTPS(app)); return b }
		h.express.limiter.appTPS = func(app string) int { _, x := cfg.splitTPS(cfg.AppTPS(app)); return x }
	}
	return h, nil
}

// Handle delivers a batch of deliver entries: it sends to every device of
// their users that is not done yet and records, on the batch, what the runner
// commits with the ack: users with transient failures come back as a retry
// entry after their backoff (Batch.EmitAt), users whose budget is spent go to
// the DLQ (Batch.DeadLetterPart), malformed entries are dead-lettered. The
// devices' outcomes and the campaign counters are recorded before that, as
// the sends end (marks.go, countSettled), so a redelivered batch sends to
// nobody twice and counts nothing twice.
func (h *Handler) Handle(ctx context.Context, b *pipeline.Batch) error {
	ok := make([]parsed, len(b.Entries))
	fetched, err := h.parseAll(ctx, b, ok)
	if err != nil {
		return err
	}
	n := 0
	for _, p := range ok {
		n += len(p.e.Users) + len(p.e.Tokens)
	}
	targets := make([]target, 0, n)
	var held holders // repeats.go: a copy of an entry is sent once
	if mayRepeat(ok) {
		held = make(holders, n)
	}
	for i, p := range ok {
		if len(p.e.Tokens) > 0 {
			for _, t := range rawTargets(p.c, p.e, i) {
				targets = held.add(targets, t)
			}
			continue
		}
		for _, u := range p.e.Users {
			targets = held.add(targets, target{c: p.c, user: u, force: p.e.Force, forced: p.e.ForceDevices, rounds: p.e.Rounds, entry: i, slotMs: p.e.SlotMs, slotRate: p.e.SlotRate})
		}
	}
	if anyForced(ok) {
		h.noteForcedSent(b, targets)
	}

	// The runner keeps the batch claimed while it is handled, so a batch
	// slowed down by the rate limit is not taken over by another consumer.
	away := h.awayFrom(b)
	results, err := h.deliverTargets(ctx, b, targets, fetched)
	if err != nil {
		return err
	}
	if away() {
		return errMarksUncertain // before counting users done whose marks may be gone
	}
	s := h.settlement(targets, results)
	if err := h.countSettled(ctx, b.Partition, targets, s); err != nil {
		return err
	}
	s.record(b)
	return nil
}

// parsed is a deliver entry of a batch, read (the zero value for one
// dead-lettered).
type parsed struct {
	c *campaign
	e pipeline.DeliverEntry
}

// parseAll reads the batch's entries into ok (the zero value for one
// dead-lettered) and their campaigns. The rows of campaigns not cached yet
// come with their entries' users' tokens, in one round trip
// (campaigns.loadWithTokens): those tokens are returned by campaign, for
// devicesOf. Errors wrapped with permanent cannot be fixed by a retry:
// their entries are dead-lettered; those of the entry's own fields are
// pipeline.BadInput too, so `dlq retry` says they will be back (a campaign
// row gone may be restored). Any other error is the batch's.
func (h *Handler) parseAll(ctx context.Context, b *pipeline.Batch, ok []parsed) (*fetched, error) {
	entries := make([]pipeline.DeliverEntry, len(b.Entries))
	good := make([]bool, len(b.Entries))
	var missing []string
	users := map[string][]int64{} // of the missing campaigns' entries
	cached := map[string]bool{}
	for i, e := range b.Entries {
		de, err := parseEntry(e)
		if err != nil {
			b.DeadLetter(i, err)
			continue
		}
		entries[i], good[i] = de, true
		// Decided once per campaign: its tokens are read for every entry
		// of it or for none, whatever the cache does between two of them.
		if cached[de.Campaign] {
			continue
		}
		if _, seen := users[de.Campaign]; !seen {
			if h.campaigns.cached(de.Campaign) != nil {
				cached[de.Campaign] = true
				continue
			}
			missing = append(missing, de.Campaign)
		}
		users[de.Campaign] = append(users[de.Campaign], de.Users...)
	}
	// The Redis state skipDone needs of them is read meanwhile (readEarly).
	var early map[string]earlyState
	var earlyErr error
	var reading sync.WaitGroup
	if len(missing) > 0 {
		reading.Go(func() { early, earlyErr = h.readEarly(ctx, b.Partition, missing) })
	}
	tokens, failed, err := h.campaigns.loadWithTokens(ctx, missing, users)
	reading.Wait()
	if err != nil {
		return nil, err
	}
	if earlyErr != nil {
		return nil, earlyErr
	}
	f := &fetched{early: early}
	for i, de := range entries {
		if !good[i] {
			continue
		}
		if err := failed[de.Campaign]; err != nil {
			b.DeadLetter(i, err)
			continue
		}
		// Cached now (or by another handler meanwhile); loaded again only
		// if the cache let it go in between.
		c, err := h.campaigns.get(ctx, de.Campaign)
		switch {
		case errors.Is(err, errNoCampaign):
			b.DeadLetter(i, permanent(err))
			continue
		case isPermanent(err):
			b.DeadLetter(i, err)
			continue
		case err != nil:
			return nil, err
		}
		ok[i] = parsed{c, de}
		if ds, found := tokens[de.Campaign]; found {
			if f.tokens == nil {
				f.tokens = map[*campaign][]device{}
			}
			f.tokens[c] = ds
		}
	}
	return f, nil
}

// parseEntry reads one deliver entry's fields.
func parseEntry(e pipeline.Entry) (pipeline.DeliverEntry, error) {
	de, err := pipeline.ParseDeliverEntry(e.Fields)
	if err != nil {
		return de, permanent(pipeline.BadInput(err))
	}
	// An id no campaign can have is refused here, as dedupe does: looked up,
	// it is PostgreSQL's error (not UTF-8: 22021), which fails the whole
	// batch, good entries with it, until the batch is dead-lettered entire.
	if err := campaignrow.ValidateID(de.Campaign); err != nil {
		return de, permanent(pipeline.BadInput(fmt.Errorf("field %s: %w", pipeline.FieldCampaign, err)))
	}
	return de, nil
}

// settlement is how a round of targets ends: per target, whether the user
// is terminal now (done) and the devices failed for good; per entry, the
// retries to emit and the users whose budget is spent.
type settlement struct {
	done    []int64    // per target: 1 if the user is terminal now
	bare    []bool     // per target: done, with no device (no_devices)
	failed  [][]device // per target: devices failed for good
	reasons []string   // per target: why they failed (the last round's)
	retries []retryGroup
	later   []retryGroup // entries put off to their slots (pace.go)
	dead    []deadUsers
}

// retryGroup is the next attempt of users of one entry: one deliver entry,
// due after the longest backoff among them.
type retryGroup struct {
	entry int
	e     pipeline.DeliverEntry
	delay time.Duration
	// forcedFrom is the list of forced devices last added to e (a put-off
	// entry's targets share their entry's).
	forcedFrom []int64
}

// deadUsers are users (or raw tokens) of one entry and campaign out of
// attempts.
type deadUsers struct {
	entry    int
	c        *campaign
	users    []int64
	tokens   []pipeline.RawToken
	forced   []int64 // their devices a forced round left to retry
	reason   string
	attempts int
}

func newSettlement(targets int) settlement {
	return settlement{done: make([]int64, targets), bare: make([]bool, targets), failed: make([][]device, targets), reasons: make([]string, targets)}
}

// settlement decides the end of a round for each target: terminal (done),
// another attempt later (retry), or the budget is spent (failed devices, the
// user to the DLQ).
func (h *Handler) settlement(targets []target, results []userResult) settlement {
	s := newSettlement(len(targets))
	type group struct {
		entry  int
		c      *campaign
		rounds int
	}
	retries := map[group]*retryGroup{}
	dead := map[group]*deadUsers{}
	later := map[int]*retryGroup{}
	for i, t := range targets {
		r := results[i]
		rounds := t.rounds + 1
		g := group{t.entry, t.c, rounds}
		switch {
		case r.later != nil:
			// The whole entry again, as it came, with its slot.
			lg := later[t.entry]
			if lg == nil {
				lg = &retryGroup{entry: t.entry, delay: r.later.after,
					e: pipeline.DeliverEntry{Campaign: t.c.ID, Force: t.force, Rounds: t.rounds, SlotMs: r.later.slotMs, SlotRate: r.later.rate}}
				later[t.entry] = lg
			}
			lg.e.Users = append(lg.e.Users, t.user)
			// The entry's forced devices, once: its targets share the list.
			if len(t.forced) > 0 && (len(lg.forcedFrom) == 0 || &lg.forcedFrom[0] != &t.forced[0]) {
				lg.e.ForceDevices = append(lg.e.ForceDevices, t.forced...)
				lg.forcedFrom = t.forced
			}
		case r.canceled > 0:
			// Not done and not retried: its campaign was canceled.
		case r.retry == 0:
			s.done[i], s.bare[i] = 1, r.bare
		case rounds < h.cfg.MaxAttempts:
			rg := retries[g]
			if rg == nil {
				rg = &retryGroup{entry: t.entry, e: pipeline.DeliverEntry{Campaign: t.c.ID, Rounds: rounds}}
				retries[g] = rg
			}
			// A forced round marked the devices it got an answer for: its
			// retry resends only the ones that failed (FieldForceDevices).
			rg.e.ForceDevices = t.appendForced(rg.e.ForceDevices, r.retried)
			if t.raw != nil {
				rg.e.Tokens = append(rg.e.Tokens, t.rawToken())
			} else {
				rg.e.Users = append(rg.e.Users, t.user)
			}
			rg.delay = max(rg.delay, h.backoff(rounds, r.retryAfter))
			h.metrics.retries.Inc()
		default:
			s.done[i], s.failed[i], s.reasons[i] = 1, r.retried, r.reason
			du := dead[g]
			if du == nil {
				du = &deadUsers{entry: t.entry, c: t.c}
				dead[g] = du
			}
			if t.raw != nil {
				du.tokens = append(du.tokens, t.rawToken())
			} else {
				du.users = append(du.users, t.user)
			}
			du.forced = t.appendForced(du.forced, r.retried) // for `dlq retry`, as a retry
			du.reason, du.attempts = r.reason, rounds
		}
	}
	for _, rg := range retries {
		slices.Sort(rg.e.Users)
		slices.SortFunc(rg.e.Tokens, byTokenID)
		rg.e.ForceDevices = ascending(rg.e.ForceDevices)
		s.retries = append(s.retries, *rg)
	}
	for _, lg := range later {
		lg.e.ForceDevices = ascending(lg.e.ForceDevices)
		s.later = append(s.later, *lg)
	}
	for _, du := range dead {
		s.dead = append(s.dead, *du)
		h.metrics.deadUsers.Add(float64(len(du.users)))
	}
	return s
}

// record puts the settlement's retries and dead letters on the batch, for
// the runner to commit with the ack.
func (s settlement) record(b *pipeline.Batch) {
	now := time.Now()
	for _, rg := range s.retries {
		b.EmitAt(now.Add(rg.delay), b.Stream, rg.e.Fields()...)
	}
	for _, lg := range s.later {
		b.EmitAt(now.Add(lg.delay), b.Stream, lg.e.Fields()...)
	}
	for _, du := range s.dead {
		fields := map[string]string{pipeline.FieldCampaign: du.c.ID}
		n, what := len(du.users), "users"
		if len(du.tokens) > 0 {
			slices.SortFunc(du.tokens, byTokenID)
			fields[pipeline.FieldTokens] = pipeline.EncodeTokens(du.tokens)
			n, what = len(du.tokens), "raw tokens"
		} else {
			slices.Sort(du.users)
			fields[pipeline.FieldUsers] = pipeline.EncodeIDs(du.users)
		}
		if len(du.forced) > 0 {
			fields[pipeline.FieldForceDevices] = pipeline.EncodeIDs(ascending(du.forced))
		}
		b.DeadLetterPart(du.entry, fmt.Errorf("%d %s still failing after %d attempts: %s", n, what, du.attempts, du.reason),
			du.attempts, fields)
	}
}

// permanentError marks input that no retry can fix.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func permanent(err error) error { return permanentError{err} }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
