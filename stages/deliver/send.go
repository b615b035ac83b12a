package deliver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
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
func (h *Handler) deliverTargets(ctx context.Context, b *pipeline.Batch, targets []target) ([]userResult, error) {
	p := b.Partition
	devs, err := h.devicesOf(ctx, targets)
	if err != nil {
		return nil, err
	}
	pending, err := h.skipDone(ctx, p, targets, devs)
	if err != nil {
		return nil, err
	}
	rates, err := h.ratesOf(ctx, targets)
	if err != nil {
		return nil, err
	}
	later, err := h.pace(ctx, targets, pending, rates)
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

// errStopping ends a batch early when the process is shutting down.
var errStopping = errors.New("deliver is shutting down; batch left pending")

// errBatchLost ends a batch early once its entries are no longer this
// consumer's (pipeline.Batch.Lost): their new owner sends what is unsent.
var errBatchLost = errors.New("batch no longer ours; left to its new owner")

// devicesOf loads the valid tokens of every target, one query per app: the
// devices of targets[i] are the window out[i].
func (h *Handler) devicesOf(ctx context.Context, targets []target) ([][]device, error) {
	users := map[string][]int64{}
	out := make([][]device, len(targets))
	for i, t := range targets {
		if t.raw != nil {
			out[i] = []device{*t.raw}
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
			if t.c.App == app && t.raw == nil {
				out[i], next = devicesOfUser(ds, t.user, next)
			}
		}
	}
	return out, nil
}

// skipDone drops devices already marked for their campaign, and refreshes
// which campaigns have failed, in one pipelined call: a GETRANGE of the
// bytes of each sent-marks chunk the devices' bits fall in (for a message,
// whose devices are a hash field apiece, one HMGET of its fields).
func (h *Handler) skipDone(ctx context.Context, p int, targets []target, devs [][]device) ([][]device, error) {
	type span struct {
		c           *campaign
		m           markSet
		chunk       int64
		first, last int64 // byte range of the chunk read
	}
	type spanKey struct {
		c     *campaign
		chunk int64
	}
	spans := map[spanKey]*span{}
	var campaigns []*campaign
	marks := map[*campaign]markSet{}
	var last *span      // devices of neighbouring users share a span: look it up once
	var sentBy []string // the records of forced entries (forcedsent.go)
	for i, t := range targets {
		// An entry's targets are neighbours: its record is listed once.
		if t.forcedSent != "" && (len(sentBy) == 0 || sentBy[len(sentBy)-1] != t.forcedSent) && !slices.Contains(sentBy, t.forcedSent) {
			sentBy = append(sentBy, t.forcedSent)
		}
		m, ok := marks[t.c]
		if !ok {
			m = h.sentMarks(p, t.c)
			marks[t.c] = m
		}
		for _, d := range devs[i] {
			k := spanKey{t.c, m.chunk(d.id)}
			b := m.offset(d.id) / 8
			if last != nil && last.c == k.c && last.chunk == k.chunk {
				last.first, last.last = min(last.first, b), max(last.last, b)
				continue
			}
			s := spans[k]
			last = s
			if s == nil {
				s = &span{c: t.c, m: m, chunk: k.chunk, first: b, last: b}
				spans[k] = s
				last = s
				if !slices.Contains(campaigns, t.c) {
					campaigns = append(campaigns, t.c)
				}
				continue
			}
			s.first, s.last = min(s.first, b), max(s.last, b)
		}
	}
	order := make([]*span, 0, len(spans))
	cmds := make(rueidis.Commands, 0, len(spans)+len(campaigns))
	fields := map[string][]*span{} // a hash key's spans, read by one HMGET
	var hashKeys []string
	for _, s := range spans {
		key, field := s.m.ref(s.chunk)
		if field != "" {
			s.first = 0 // a hash field is read whole: a few bytes
			if fields[key] == nil {
				hashKeys = append(hashKeys, key)
			}
			fields[key] = append(fields[key], s)
			continue
		}
		order = append(order, s)
		cmds = append(cmds, h.rdb.B().Getrange().Key(key).Start(s.first).End(s.last).Build())
	}
	for _, key := range hashKeys {
		names := make([]string, len(fields[key]))
		for i, s := range fields[key] {
			_, names[i] = s.m.ref(s.chunk)
		}
		cmds = append(cmds, h.rdb.B().Hmget().Key(key).Field(names...).Build())
	}
	for _, c := range campaigns {
		cmds = append(cmds, h.rdb.B().Hget().Key(h.keys.Campaign(c.ID)).Field(pipeline.CampaignFailed).Build())
	}
	cmds = h.readForcedSent(cmds, sentBy)
	bits := make(map[spanKey]string, len(spans))
	res := h.rdb.DoMulti(ctx, cmds...)
	for i, s := range order {
		b, err := res[i].ToString()
		if err != nil && !rueidis.IsRedisNil(err) {
			return nil, fmt.Errorf("read sent marks of %s: %w", s.c.ID, err)
		}
		bits[spanKey{s.c, s.chunk}] = b
	}
	for i, key := range hashKeys {
		vals, err := res[len(order)+i].ToArray()
		if err != nil || len(vals) != len(fields[key]) {
			return nil, fmt.Errorf("read sent marks %s: %d values for %d fields: %w", key, len(vals), len(fields[key]), err)
		}
		for j, s := range fields[key] {
			b, err := vals[j].ToString()
			if err != nil && !rueidis.IsRedisNil(err) {
				return nil, fmt.Errorf("read sent marks of %s: %w", s.c.ID, err)
			}
			bits[spanKey{s.c, s.chunk}] = b
		}
	}
	for i, c := range campaigns {
		reason, err := res[len(order)+len(hashKeys)+i].ToString()
		if err != nil && !rueidis.IsRedisNil(err) {
			return nil, fmt.Errorf("read campaign %s state: %w", c.ID, err)
		}
		if reason != "" {
			h.failed.Store(c.ID, reason)
		}
	}
	sent, err := parseForcedSent(res[len(order)+len(hashKeys)+len(campaigns):], sentBy)
	if err != nil {
		return nil, err
	}
	out := make([][]device, len(targets))
	for i, t := range targets {
		ds := devs[i]
		keep := ds[:0:0]
		m := marks[t.c]
		sentBefore := sent[t.forcedSent] // nil unless t is forced
		for j, d := range ds {
			k := spanKey{t.c, m.chunk(d.id)}
			// A marked device is sent again if forced, unless its entry's
			// forced rounds sent it already (a redelivery after a crash).
			if !bitSet(bits[k], spans[k].first, m.offset(d.id)) || t.forces(d.id) && !sentBefore.has(d.id) {
				if len(keep) == j {
					keep = ds[: j+1 : j+1] // all kept so far: share the slice
				} else {
					keep = append(keep, d) // copies on its first growth, ds stays as it is
				}
			}
		}
		out[i] = keep
	}
	return out, nil
}

// provider names, for the limiter and metrics.
func providerOf(p push.Platform) string {
	switch p {
	case push.IOS:
		return "apns"
	case push.Android:
		return "fcm"
	default:
		return "none"
	}
}

// sendOne sends to one device (its caller took the in-flight slot and the
// rate-limit permit). mark says the outcome is terminal and is to be marked
// (the caller hands it to the marker); otherwise it is a Retry result for
// the caller to schedule, or an error. now is the chunk's clock, read after
// its previous send; at is the clock after this one (zero when it made no
// request), the next send's now: the clock is read once a send.
func (h *Handler) sendOne(ctx context.Context, l *appLane, lim *limiter, c *campaign, d device, now time.Time, emit emitFunc) (res push.Result, mark bool, at time.Time, err error) {
	if l.sender == nil {
		l.sent[push.Failed].Inc()
		return push.Result{Outcome: push.Failed, Reason: "no sender for platform"}, true, at, nil
	}
	// It may have expired while the send waited for its permits. now is
	// stale by a cancel check: near the expiry the clock is read again, so
	// that no send starts past it, and a send far from it costs no clock
	// read.
	if !c.expires.IsZero() && c.expires.Sub(now) < time.Minute && c.expired(time.Now()) {
		l.expired.Inc()
		return push.Result{Outcome: push.Failed, Reason: ReasonExpired}, true, at, nil
	}
	id := lim.begin(l.provider, c.App)
	res = l.sender.Send(ctx, c.notification(d))
	at = lim.done(ctx, id, l.provider, c.App, res)
	if res.Reason == ReasonNoCredentials {
		// Its app has no credentials for the platform: failed without a
		// request (appsenders.go), so no clock after it and unsent, like a
		// device with no sender, and no request time observed.
		l.sent[push.Failed].Inc()
		return res, true, time.Time{}, nil
	}
	// The request's time: from the limiter's clock at its start when it
	// read one, else from the chunk's (the previous send's end: this
	// send's cancel check and notification are in it, microseconds
	// beside a provider's milliseconds).
	start := now
	if !id.IsZero() {
		start = id
	}
	if at.IsZero() {
		at = time.Now()
	}
	if l.requests != nil {
		l.requests.Observe(at.Sub(start).Seconds())
	}
	if res.Outcome >= push.Sent && res.Outcome <= push.Failed {
		l.sent[res.Outcome].Inc()
	} else {
		h.metrics.sent(l.provider, res.Outcome, l.pl).Inc()
	}
	switch res.Outcome {
	case push.Sent:
	case push.Invalid:
		// The invalidation goes to ingest first: a crash before the mark
		// repeats the send and the (idempotent) event, never loses it.
		if err := h.invalidate(ctx, c.App, d, res, emit); err != nil {
			return res, false, at, err
		}
		at = time.Now() // not the next request's time
	case push.Failed:
		if res.CampaignFatal {
			if err := h.failCampaign(ctx, c, d.platform, res); err != nil {
				return res, false, at, err
			}
			at = time.Now()
		}
	default:
		if ctx.Err() != nil {
			// Cut short by shutdown: the batch stays pending and is
			// redone; do not spend a retry on it.
			return res, false, at, ctx.Err()
		}
		res.Outcome = push.Retry
		return res, false, at, nil
	}
	return res, true, at, nil
}

// counterOf is the campaign counter a terminal outcome adds to.
func counterOf(o push.Outcome) string {
	switch o {
	case push.Sent:
		return pipeline.StatSent
	case push.Invalid:
		return pipeline.StatInvalid
	default:
		return pipeline.StatFailed
	}
}

// marksTTL keeps a campaign's sent marks, from its last write to them, for
// as long as its notifications may still be delivered, and at least an
// hour, so a late replay or claim still finds them.
func marksTTL(c *campaign) time.Duration {
	return max(c.ttl, 0) + time.Hour
}

// markUnsent marks devs of campaign c failed with reason, unsent: their
// notification expired, or their campaign failed (StatUnsent).
func (h *Handler) markUnsent(ctx context.Context, p int, c *campaign, reason string, devs ...device) error {
	if len(devs) == 0 {
		return nil
	}
	marks := make([]markReq, len(devs))
	for i, d := range devs {
		marks[i] = markReq{p: p, c: c, d: d, outcome: push.Failed, reason: reason, unsent: true}
	}
	return h.execMarks(ctx, p, c, marks)
}

// execMarks runs markScript for devices of one campaign, grouped by counter
// and reason, with their result events when results are on.
func (h *Handler) execMarks(ctx context.Context, p int, c *campaign, marks []markReq) error {
	keys := newScriptKeys(h.keys.Stats(p, c.ID), h.settledKey(p, c.ID), h.keys.Stream(pipeline.StreamResults, p), h.keys.Reasons(p, c.ID))
	sent := h.sentMarks(p, c)
	now := time.Now().UnixMilli()
	args := []string{strconv.FormatInt(int64(marksTTL(c)/time.Second), 10), strconv.FormatInt(now, 10), "0"}
	if !h.cfg.NoResults {
		args = append(args, c.resultHeader(now)...)
		args = append(args, pipeline.FieldEvents, resultRecords(marks))
		args[2] = strconv.Itoa(len(args) - 3)
	}
	groups, forced := groupMarks(marks)
	for _, g := range groups {
		counter := counterOf(g.outcome)
		if g.unsent {
			counter = pipeline.StatUnsent // and failed: markScript
		}
		args = append(args, counter, g.reason, strconv.Itoa(len(g.ids)), "")
		at := len(args) - 1
		var n int
		args, n = appendMasks(args, g.ids, sent, keys.index)
		args[at] = strconv.Itoa(n)
	}
	// After the counted groups, whose answers are news by index.
	for _, g := range forced {
		args = append(args, "", "", strconv.Itoa(len(g.ids)), "")
		at := len(args) - 1
		var n int
		args, n = appendMasks(args, g.ids, forcedSentMarks(g.key), keys.index)
		args[at] = strconv.Itoa(n)
	}
	news, err := markScript.Exec(ctx, h.rdb, keys.keys, args).AsIntSlice()
	if err != nil {
		return fmt.Errorf("mark %d devices of %s: %w", len(marks), c.ID, err)
	}
	if !h.cfg.NoResults {
		// Counted per call and group, as written: a repeated mark wrote
		// no event and counts none.
		for i, g := range groups {
			if i < len(news) {
				h.metrics.eventsWritten(g.outcome, news[i])
			}
		}
	}
	return nil
}

// markGroup is the devices of a mark call with one outcome and reason.
type markGroup struct {
	outcome push.Outcome
	reason  string  // as counted (countedReason), "" for sent
	unsent  bool    // failed with no provider request (markReq.unsent)
	ids     []int64 // ascending
}

// countedReason is how a device's failure is counted in its campaign's
// reasons (Keys.Reasons, the console's failures by reason): with the
// provider that gave it. APNs and FCM name the same failure differently
// ("Unregistered", "UNREGISTERED"), and an operator reads which provider
// refuses what, or lacks credentials. A campaign's own failure names its
// provider already (failCampaign). The result events keep the provider's
// reason as it came.
func countedReason(p push.Platform, reason string) string {
	if reason == "" {
		reason = "unknown"
	}
	if prov, _, ok := strings.Cut(reason, " "); ok && (prov == "apns" || prov == "fcm") {
		return reason
	}
	return providerOf(p) + " " + reason
}

// groupMarks groups marks by outcome and reason, in that order, each
// group's device ids sorted, and the devices that forced entries' rounds
// marked by entry (forcedsent.go), sorted too. A flush is nearly always one group (sent), and
// sorting its ids costs a fifth of sorting the marks themselves (structs of
// ~100 bytes, three comparisons each: two thirds of execMarks's CPU when it
// did, BenchmarkDeliverNull's profile).
func groupMarks(marks []markReq) ([]markGroup, []forcedGroup) {
	var (
		groups []markGroup
		forced []forcedGroup
	)
	last := -1
	for _, m := range marks {
		if m.forcedSent != "" {
			forced = addForced(forced, m.forcedSent, m.d.id)
		}
		reason := ""
		if m.outcome != push.Sent {
			reason = countedReason(m.d.platform, m.reason)
		}
		if last < 0 || groups[last].outcome != m.outcome || groups[last].reason != reason || groups[last].unsent != m.unsent {
			last = slices.IndexFunc(groups, func(g markGroup) bool {
				return g.outcome == m.outcome && g.reason == reason && g.unsent == m.unsent
			})
			if last < 0 {
				last = len(groups)
				groups = append(groups, markGroup{outcome: m.outcome, reason: reason, unsent: m.unsent})
			}
		}
		groups[last].ids = append(groups[last].ids, m.d.id)
	}
	for _, g := range groups {
		slices.Sort(g.ids)
	}
	slices.SortFunc(groups, func(a, b markGroup) int {
		return cmp.Or(cmp.Compare(a.outcome, b.outcome), cmp.Compare(a.reason, b.reason), compareBool(a.unsent, b.unsent))
	})
	for _, g := range forced {
		slices.Sort(g.ids)
	}
	return groups, forced
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// settledKey is a campaign's set, in partition p, of the users counted done
// and the devices counted failed after their user's last retry (see
// settledScript). It shares the partition's hash tag with the sent marks.
func (h *Handler) settledKey(p int, campaign string) string {
	return h.keys.Settled(p, campaign)
}

// countSettled adds users that became terminal to users_done and the
// devices of users out of retries to failed, each once ever (see
// settledScript). It runs before the round is acked: a crash in between
// redoes the round, which then counts nothing twice.
func (h *Handler) countSettled(ctx context.Context, p int, targets []target, s settlement) error {
	type settled struct {
		users  []int64
		bare   []int64 // those of users with no device
		failed []markReq
	}
	byCampaign := map[*campaign]*settled{}
	for i, t := range targets {
		if s.done[i] == 0 {
			continue
		}
		c := byCampaign[t.c]
		if c == nil {
			c = &settled{}
			byCampaign[t.c] = c
		}
		if s.bare[i] {
			c.bare = append(c.bare, h.doneIndex(t.c, t.user))
		} else {
			c.users = append(c.users, h.doneIndex(t.c, t.user))
		}
		for _, d := range s.failed[i] {
			c.failed = append(c.failed, markReq{d: d, outcome: push.Failed, reason: cmp.Or(s.reasons[i], "unknown")})
		}
	}
	for c, set := range byCampaign {
		sent := h.sentMarks(p, c)
		keys := newScriptKeys(h.keys.Stats(p, c.ID), h.settledKey(p, c.ID), h.keys.Stream(pipeline.StreamResults, p), h.keys.Reasons(p, c.ID))
		slices.Sort(set.users)
		slices.Sort(set.bare)
		slices.SortFunc(set.failed, func(a, b markReq) int {
			return cmp.Or(cmp.Compare(countedReason(a.d.platform, a.reason), countedReason(b.d.platform, b.reason)), cmp.Compare(a.d.id, b.d.id))
		})
		paceEvery := h.cfg.donePaceEvery.Milliseconds()
		if c.message {
			paceEvery = -1 // its 30 bytes a partition would buy nothing
		}
		args := []string{strconv.FormatInt(int64(marksTTL(c)/time.Second), 10), "", "", "0", strconv.FormatInt(paceEvery, 10)}
		if !h.cfg.NoResults && len(set.failed) > 0 {
			args = append(args, c.resultHeader(time.Now().UnixMilli())...)
			args = append(args, pipeline.FieldEvents, resultRecords(set.failed))
			args[3] = strconv.Itoa(len(args) - 5)
		}
		var groups int
		args, groups = appendMasks(args, set.users, h.doneMarks(p, c), keys.index)
		args[1] = strconv.Itoa(groups)
		args, groups = appendMasks(args, set.bare, h.doneMarks(p, c), keys.index)
		args[2] = strconv.Itoa(groups)
		ids := make([]int64, 0, len(set.failed))
		for i := 0; i < len(set.failed); {
			j := i
			ids = ids[:0]
			reason := countedReason(set.failed[i].d.platform, set.failed[i].reason)
			for ; j < len(set.failed) && countedReason(set.failed[j].d.platform, set.failed[j].reason) == reason; j++ {
				ids = append(ids, set.failed[j].d.id)
			}
			args = append(args, reason, "")
			at := len(args) - 1
			args, groups = appendGroups(args, ids, sent, keys.index)
			args[at] = strconv.Itoa(groups)
			i = j
		}
		written, err := settledScript.Exec(ctx, h.rdb, keys.keys, args).AsInt64()
		if err != nil {
			return fmt.Errorf("count settled users of %s: %w", c.ID, err)
		}
		h.metrics.eventsWritten(push.Failed, written)
	}
	return nil
}

// invalidate tells ingest that the provider rejected a token as dead, with
// APNs's timestamp when it gave one: ingest applies it only if the device was
// not registered again after that time.
func (h *Handler) invalidate(ctx context.Context, app string, d device, res push.Result, emit emitFunc) error {
	if d.raw {
		return nil // a raw token is not the registry's: rawtokens.go says why
	}
	at := res.InvalidSince
	if at.IsZero() {
		at = time.Now()
	}
	ev := devices.Event{Op: pipeline.OpInvalidate, App: app, Token: d.token, User: d.user, At: at.UnixMicro()}
	switch d.platform {
	case push.IOS:
		ev.Platform = devices.IOS
	case push.Android:
		ev.Platform = devices.Android
	}
	// Tried again while Redis is away: given up on, the batch's retry would
	// send to the dead token again. Ingest applies an event once.
	if err := h.untilRedisBack("invalidation", func() error { return emit(ctx, ev.Message(h.keys)) }); err != nil {
		return fmt.Errorf("emit invalidation: %w", err)
	}
	return nil
}

// failCampaign records that the provider refused what every device of the
// campaign gets (credentials, payload, topic): the campaign fails with the
// reason, its remaining devices are counted failed without being sent, and
// no token is deleted. The first reason wins.
func (h *Handler) failCampaign(ctx context.Context, c *campaign, platform push.Platform, res push.Result) error {
	reason := fmt.Sprintf("%s %d %s", providerOf(platform), res.Status, res.Reason)
	err := h.untilRedisBack("campaign failure", func() error {
		return h.rdb.Do(ctx, h.rdb.B().Hsetnx().Key(h.keys.Campaign(c.ID)).Field(pipeline.CampaignFailed).Value(reason).Build()).Error()
	})
	if err != nil {
		return fmt.Errorf("fail campaign %s: %w", c.ID, err)
	}
	if _, loaded := h.failed.LoadOrStore(c.ID, reason); !loaded {
		h.log.Error().Str("campaign", c.ID).Str("reason", reason).Msg("campaign failed: the provider refuses its requests")
	}
	return nil
}

// campaignFailed returns the reason a campaign failed, or "".
func (h *Handler) campaignFailed(id string) string {
	if v, ok := h.failed.Load(id); ok {
		return v.(string)
	}
	return ""
}
