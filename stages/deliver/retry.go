package deliver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
)

// Retries live in the partition's sorted set keys.Retry(p), scored by the
// unix ms at which they are due. A member is one user of one campaign with
// the number of send rounds already made: "rounds:user:campaign". A retry
// round resends to the user's devices that are not marked done yet, so the
// member needs no tokens.

func retryMember(campaign string, user int64, rounds int) string {
	return strconv.Itoa(rounds) + ":" + strconv.FormatInt(user, 10) + ":" + campaign
}

func parseRetryMember(m string) (campaign string, user int64, rounds int, err error) {
	r, rest, ok1 := strings.Cut(m, ":")
	u, c, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || c == "" {
		return "", 0, 0, fmt.Errorf("retry member %q is not rounds:user:campaign", m)
	}
	if rounds, err = strconv.Atoi(r); err != nil || rounds < 1 {
		return "", 0, 0, fmt.Errorf("retry member %q: bad round count", m)
	}
	if user, err = strconv.ParseInt(u, 10, 64); err != nil {
		return "", 0, 0, fmt.Errorf("retry member %q: bad user id", m)
	}
	return c, user, rounds, nil
}

// backoff is the wait before round rounds+1: exponential with full jitter
// (so that the users of one outage do not all come back at once), never
// shorter than what the provider asked for in Retry-After.
func (h *Handler) backoff(rounds int, retryAfter time.Duration) time.Duration {
	ceil := h.cfg.RetryBase << min(rounds-1, 30)
	if ceil <= 0 || ceil > h.cfg.RetryMax {
		ceil = h.cfg.RetryMax
	}
	d := time.Duration(rand.Int64N(int64(ceil)) + 1)
	return max(d, min(retryAfter, h.cfg.RetryMax), time.Millisecond)
}

// Run polls the retry sets of the configured partitions until ctx ends and
// sends due retries, without ever blocking the stream: retries share the
// in-flight slots and the rate limit with it. Give it the context the runner
// gets: when it ends, the stage starts no more sends (stream batches and
// retry rounds alike) and lets those in flight finish, so that a graceful
// stop repeats nothing; what was not sent stays pending, or in the retry set
// until its lease ends.
func (h *Handler) Run(ctx context.Context) error {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		h.stopping.Store(true)
		t := time.AfterFunc(h.cfg.ShutdownTimeout, cancel)
		context.AfterFunc(work, func() { t.Stop() })
	})
	defer stop()
	t := time.NewTicker(h.cfg.RetryPoll)
	defer t.Stop()
	for {
		busy := false
		for _, p := range h.cfg.Partitions {
			if ctx.Err() != nil {
				return nil
			}
			n, err := h.retryPartition(work, p)
			if err != nil && work.Err() == nil {
				h.log.Warn().Err(err).Int("partition", p).Msg("retry round failed; its retries come back after their lease")
			}
			busy = busy || n == h.takeSize()
		}
		if busy {
			continue // more is due: do not wait for the tick
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// takeSize bounds the retries taken at once: no more than can be in flight.
func (h *Handler) takeSize() int { return h.cfg.InFlight }

// retryPartition takes the due retries of one partition (leasing them),
// sends them, and settles each: done, scheduled again, or dead.
func (h *Handler) retryPartition(ctx context.Context, p int) (int, error) {
	key := h.keys.Retry(p)
	members, err := takeScript.Exec(ctx, h.rdb, []string{key}, []string{
		strconv.Itoa(h.takeSize()), strconv.FormatInt(h.cfg.RetryLease.Milliseconds(), 10),
	}).AsStrSlice()
	if err != nil {
		return 0, fmt.Errorf("take retries of partition %d: %w", p, err)
	}
	if len(members) == 0 {
		return 0, nil
	}
	targets := make([]target, 0, len(members))
	var dropped []string
	for _, m := range members {
		id, user, rounds, err := parseRetryMember(m)
		if err != nil {
			h.log.Error().Err(err).Msg("dropping malformed retry")
			dropped = append(dropped, m)
			continue
		}
		c, err := h.campaigns.get(ctx, id)
		if errors.Is(err, errNoCampaign) {
			h.log.Error().Str("campaign", id).Msg("dropping retries of a campaign that no longer exists")
			dropped = append(dropped, m)
			continue
		}
		if err != nil {
			return len(members), err
		}
		targets = append(targets, target{c: c, user: user, rounds: rounds, member: m})
	}
	stop := h.keepLeased(ctx, p, members)
	results, err := h.deliverTargets(ctx, p, targets, nil)
	stop()
	if err != nil {
		return len(members), err
	}
	s := h.settlement(targets, results)
	if err := h.deadLetter(ctx, h.keys.Stream(pipeline.StreamDeliver, p), s.dead); err != nil {
		return len(members), err
	}
	if err := h.countSettled(ctx, p, targets, s); err != nil {
		return len(members), err
	}
	return len(members), h.settleRetries(ctx, p, targets, s, dropped)
}

// settleRetries ends taken retries atomically (see settleScript).
func (h *Handler) settleRetries(ctx context.Context, p int, targets []target, s settlement, dropped []string) error {
	// Counters were added by countSettled, once per user and device.
	keys := []string{h.keys.Retry(p)}
	var args []string
	for i, t := range targets {
		r := s.retries[i]
		args = append(args, t.member, r.member, strconv.FormatInt(r.delay.Milliseconds(), 10), "0")
	}
	for _, m := range dropped {
		args = append(args, m, "", "0", "0")
	}
	if err := settleScript.Exec(ctx, h.rdb, keys, args).Error(); err != nil {
		return fmt.Errorf("settle retries of partition %d: %w", p, err)
	}
	return nil
}

// keepLeased pushes the lease of taken retries forward every third of the
// lease until stop is called, so that a round slowed down by the rate limit
// is not taken (and sent) a second time by another poller. ZADD XX never
// brings back a retry that was settled meanwhile.
func (h *Handler) keepLeased(ctx context.Context, p int, members []string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(h.cfg.RetryLease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			score := float64(time.Now().Add(h.cfg.RetryLease).UnixMilli())
			cmd := h.rdb.B().Zadd().Key(h.keys.Retry(p)).Xx().ScoreMember()
			for _, m := range members {
				cmd = cmd.ScoreMember(score, m)
			}
			if err := h.rdb.Do(ctx, cmd.Build()).Error(); err != nil && ctx.Err() == nil {
				h.log.Warn().Err(err).Int("partition", p).Msg("could not extend the lease of retries")
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

func sortedCopy(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}
