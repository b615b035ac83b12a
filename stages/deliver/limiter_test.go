package deliver

import (
	"context"
	"sync"
	"testing"
	"time"
)

// permitLog records when permits were used.
type permitLog struct {
	mu    sync.Mutex
	times []time.Time
}

func (p *permitLog) add(t time.Time) {
	p.mu.Lock()
	p.times = append(p.times, t)
	p.mu.Unlock()
}

// worstSeconds checks what a provider counting per wall-clock second would
// see if every request arrived up to delay after its permit was used: for
// each second, the permits used in it plus those used in the last delay of
// the second before must fit tps.
func (p *permitLog) check(t *testing.T, tps int, delay time.Duration) {
	t.Helper()
	p.checkFrom(t, tps, delay, 0)
}

// checkFrom is check for the seconds from since on.
func (p *permitLog) checkFrom(t *testing.T, tps int, delay time.Duration, since int64) {
	t.Helper()
	used, late := map[int64]int{}, map[int64]int{}
	for _, u := range p.times {
		sec := u.Unix()
		used[sec]++
		if u.Sub(u.Truncate(time.Second)) > time.Second-delay {
			late[sec+1]++
		}
	}
	for sec, n := range used {
		if sec >= since && n+late[sec] > tps {
			t.Errorf("second %d: %d permits + %d from the end of the second before, cap %d", sec, n, late[sec], tps)
		}
	}
	if len(p.times) == 0 {
		t.Fatal("no permits at all")
	}
	t.Logf("%d permits over %d seconds: %v (late %v)", len(p.times), len(used), used, late)
}

// TestLimiterCapsEveryWindow: two limiters (two processes) taking permits as
// fast as they can never get more than tps in any second together, even
// counting the requests of the previous second's end that may arrive late
// (up to the margin and the minimum tail).
func TestLimiterCapsEveryWindow(t *testing.T) {
	t.Parallel() // mostly waiting (outage, rate limit, lease)
	f := newFixture(t)
	const tps, margin = 500, 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(f.ctx, 3500*time.Millisecond)
	defer cancel()
	var (
		log permitLog
		wg  sync.WaitGroup
	)
	for range 2 {
		l := newLimiter(f.rdb, f.keys, tps, margin)
		for range 8 {
			wg.Go(func() {
				for l.wait(ctx, "apns", testApp) == nil {
					log.add(time.Now())
				}
			})
		}
	}
	wg.Wait()
	log.check(t, tps, margin+minTail)
}

// TestLimiterTailFollowsSlowSends: when sends take long, the part of the
// window whose permits also count against the next window grows with them,
// so that a slow request counted in the next second still fits its cap
// (once the limiter has seen a slow send: the first second cannot know).
func TestLimiterTailFollowsSlowSends(t *testing.T) {
	t.Parallel() // mostly waiting (outage, rate limit, lease)
	f := newFixture(t)
	const tps, margin, slow = 300, 50 * time.Millisecond, 400 * time.Millisecond
	ctx, cancel := context.WithTimeout(f.ctx, 3500*time.Millisecond)
	defer cancel()
	var (
		log permitLog
		wg  sync.WaitGroup
	)
	for range 2 {
		l := newLimiter(f.rdb, f.keys, tps, margin)
		for range 4 {
			wg.Go(func() {
				for {
					if l.wait(ctx, "fcm", testApp) != nil {
						return
					}
					log.add(time.Now())
					// A send that takes slow: its permit's successors see it
					// in flight, and later its duration.
					id := l.begin()
					go func() { time.Sleep(slow); l.done(id) }()
				}
			})
		}
	}
	wg.Wait()
	// The first second has no slow sends to learn from yet.
	log.checkFrom(t, tps, margin+slow, log.times[0].Unix()+2)
}

// TestLimiterOff: tps 0 never waits and never calls Redis.
func TestLimiterOff(t *testing.T) {
	l := newLimiter(nil, testKeysOnly(), 0, time.Millisecond)
	for range 1000 {
		if err := l.wait(context.Background(), "apns", testApp); err != nil {
			t.Fatal(err)
		}
	}
}
