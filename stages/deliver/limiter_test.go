package deliver

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestLimiterCapsEveryWindow: two limiters (two processes) taking permits
// as fast as they can never get more than tps in any wall-clock second
// together, and never use a permit in the last margin of its second.
func TestLimiterCapsEveryWindow(t *testing.T) {
	f := newFixture(t)
	const tps, margin = 500, 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(f.ctx, 3500*time.Millisecond)
	defer cancel()
	var (
		mu     sync.Mutex
		perSec = map[int64]int{}
		late   int
		wg     sync.WaitGroup
	)
	for range 2 {
		l := newLimiter(f.rdb, f.keys, tps, margin)
		for range 8 {
			wg.Go(func() {
				for {
					if err := l.wait(ctx, "apns", testApp); err != nil {
						return
					}
					now := time.Now()
					mu.Lock()
					perSec[now.Unix()]++
					if now.Sub(now.Truncate(time.Second)) > time.Second-margin {
						late++
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	total := 0
	for sec, n := range perSec {
		total += n
		if n > tps {
			t.Errorf("second %d: %d permits, cap %d", sec, n, tps)
		}
	}
	if late > 0 {
		t.Errorf("%d permits used in the last %v of their second", late, margin)
	}
	if total == 0 {
		t.Fatal("no permits at all")
	}
	t.Logf("%d permits over %d seconds: %v", total, len(perSec), perSec)
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

// TestLimiterCutoffFollowsSlowSends: when sends take long, permits stop
// being used that long before their window ends, so that a slow request
// still reaches the provider in the second it was counted in.
func TestLimiterCutoffFollowsSlowSends(t *testing.T) {
	f := newFixture(t)
	l := newLimiter(f.rdb, f.keys, 10000, 50*time.Millisecond)
	ctx, cancel := context.WithTimeout(f.ctx, 2500*time.Millisecond)
	defer cancel()
	const slow = 300 * time.Millisecond
	var used, late int
	for {
		l.observe(slow)
		if err := l.wait(ctx, "fcm", testApp); err != nil {
			break
		}
		now := time.Now()
		used++
		if now.Sub(now.Truncate(time.Second)) > time.Second-slow {
			late++
		}
		time.Sleep(time.Millisecond)
	}
	if late > 0 {
		t.Errorf("%d of %d permits used within %v of their window's end", late, used, slow)
	}
	if used == 0 {
		t.Fatal("no permits at all")
	}
}
