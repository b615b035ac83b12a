package deliver

import (
	"context"
	"fmt"
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
	for len(b.grants) > 0 {
		g := &b.grants[0]
		if over := now.Sub(g.next) - g.late; over > 0 {
			skip := min(int(over/g.every)+1, g.n)
			g.n -= skip
			g.next = g.next.Add(time.Duration(skip) * g.every)
			dropped += skip
		}
		if g.n > 0 {
			return dropped
		}
		b.grants = b.grants[1:]
	}
	return dropped
}

func (b *bucket) left() int {
	n := 0
	for _, g := range b.grants {
		n += g.n
	}
	return n
}

// take hands out the earliest permit's slot and how late it may be used;
// there must be one.
func (b *bucket) take() (slot time.Time, late time.Duration) {
	g := &b.grants[0]
	slot, late = g.next, g.late
	g.next = g.next.Add(g.every)
	if g.n--; g.n == 0 {
		b.grants = b.grants[1:]
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
	tps, chunk, ahead := l.rate(b)
	res, err := grantScript.Exec(ctx, l.rdb, []string{b.key}, []string{
		strconv.Itoa(tps), strconv.Itoa(chunk),
		strconv.FormatInt(ahead.Microseconds(), 10), strconv.FormatInt(allowance.Microseconds(), 10),
		recoverKnee, recoverFast, recoverSlow,
	}).AsIntSlice()
	end := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fetching = nil
	close(ch)
	switch {
	case err != nil:
		return fmt.Errorf("rate limit %s: %w", b.key, err)
	case len(res) != 3:
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
