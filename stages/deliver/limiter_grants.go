package deliver

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// The permits a process holds, and how it gets them from Redis.

// grant is a chunk of permits: n slots, every apart, from next on (this
// process's clock), each to be used no later than late after its slot.
type grant struct {
	next        time.Time
	n           int
	every, late time.Duration
}

// dropLate drops the permits that nobody took until more than their late
// past their slots, and returns how many.
func (b *bucket) dropLate(now time.Time) int {
	dropped := 0
	for i := range b.grants {
		g := &b.grants[i]
		if over := now.Sub(g.next) - g.late; over > 0 {
			skip := min(int(over/g.every)+1, g.n)
			g.n -= skip
			g.next = g.next.Add(time.Duration(skip) * g.every)
			dropped += skip
		}
	}
	b.grants = slices.DeleteFunc(b.grants, func(g grant) bool { return g.n == 0 })
	return dropped
}

func (b *bucket) left() int {
	n := 0
	for _, g := range b.grants {
		n += g.n
	}
	return n
}

// take hands out the earliest slot of the permits held and how late it may
// be used; there must be one. (The express lane holds permits of two
// schedules, its own and the bulk lane's, whose slots interleave.)
func (b *bucket) take() (slot time.Time, late time.Duration) {
	i := 0
	for j := range b.grants {
		if b.grants[j].next.Before(b.grants[i].next) {
			i = j
		}
	}
	g := &b.grants[i]
	slot, late = g.next, g.late
	g.next = g.next.Add(g.every)
	if g.n--; g.n == 0 {
		b.grants = slices.Delete(b.grants, i, i+1)
	}
	return slot, late
}

// fetch asks Redis for a chunk of permits to be used no later than late
// after their slots, spaced for allowance (or wider, if another process
// asked for more), and ends the fetch ch stands for. Slots come back
// relative to Redis's now, which lies between the start and the end of the
// call: they are placed from the end, so that none is early (the call's
// duration adds to lateness).
func (l *limiter) fetch(ctx context.Context, b *bucket, ch chan struct{}, late, allowance time.Duration) error {
	res, err := l.grant(ctx, l, b.key, b.app, allowance)
	if err == nil && len(res) == 4 && l.caps != nil {
		l.caps.WithLabelValues(b.provider, b.app, l.lane.String()).Set(float64(res[3]))
	}
	if err == nil && len(res) == 4 && res[0] == 0 && b.lend != "" && !l.lender.off(b.app) {
		// None of its own before its next slot: what the lender has unused.
		lent, lerr := l.grant(ctx, l.lender, b.lend, b.app, allowance)
		switch {
		case lerr != nil:
			err = lerr
		case len(lent) == 4 && lent[0] > 0:
			res = lent
		case len(lent) == 4:
			res[1] = min(res[1], lent[1]) // ask again when either has one
		}
	}
	end := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fetching = nil
	close(ch)
	switch {
	case err != nil:
		return fmt.Errorf("rate limit %s: %w", b.key, err)
	case len(res) != 4:
		return fmt.Errorf("rate limit %s: unexpected reply %v", b.key, res)
	case res[0] == 0:
		b.notBefore = end.Add(time.Duration(res[1]) * time.Microsecond)
		return nil
	}
	b.grants = append(b.grants, grant{
		next: end.Add(time.Duration(res[1]) * time.Microsecond), n: int(res[0]),
		every: time.Duration(res[2]), late: late,
	})
	return nil
}

// grant runs grantScript on key, a schedule of owner's (l's own, or its
// lender's), at owner's rate for app.
func (l *limiter) grant(ctx context.Context, owner *limiter, key, app string, allowance time.Duration) ([]int64, error) {
	tps, chunk, ahead := owner.rate(app)
	return grantScript.Exec(ctx, l.rdb, []string{key}, []string{
		strconv.Itoa(tps), strconv.Itoa(chunk),
		strconv.FormatInt(ahead.Microseconds(), 10), strconv.FormatInt(allowance.Microseconds(), 10),
		recoverKnee, recoverFast, recoverSlow,
	}).AsIntSlice()
}
