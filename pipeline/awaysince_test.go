package pipeline

import (
	"strconv"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/bench/localserver"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// RedisAwaySince reads the last keep that could not reach Redis
// (keepClaimed) against the time the handler asks from: a keep failed at
// it or after counts, one before it does not, and a part of a batch
// (processEach) sees the keep of the batch it was split from.
func TestRedisAwaySince(t *testing.T) {
	since := time.Now()
	tests := []struct {
		name   string
		unkept time.Time // the last keep that could not reach Redis; zero: none did
		part   bool      // asked of a part of the batch
		want   bool
	}{
		{name: "no keep failed"},
		{name: "a keep failed before", unkept: since.Add(-time.Millisecond)},
		{name: "a keep failed at it", unkept: since, want: true},
		{name: "a keep failed after", unkept: since.Add(time.Millisecond), want: true},
		{name: "a part, its batch's keep failed after", unkept: since.Add(time.Millisecond), part: true, want: true},
		{name: "a part, its batch's keep failed before", unkept: since.Add(-time.Millisecond), part: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &Batch{}
			if !tt.unkept.IsZero() {
				b.unkept.Store(tt.unkept.UnixNano())
			}
			asked := b
			if tt.part {
				asked = &Batch{parent: b}
			}
			if got := asked.RedisAwaySince(since); got != tt.want {
				t.Errorf("RedisAwaySince = %v, want %v", got, tt.want)
			}
		})
	}
}

// A keep that hangs (Redis cut off by the network: no answer, no error)
// makes RedisAwaySince true once it is overdue, before it fails, which
// comes only when the connection gives up (10 s on); and once it is
// answered, the spell it waited through still counts for a round that
// began before it ended. Before, it counted only once the keep failed: a
// deliver round could count its users done on the promoted master
// meanwhile.
func TestRedisAwaySinceAKeepHangs(t *testing.T) {
	t.Parallel()
	redis, err := localserver.StartRedis(localserver.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { redis.Close() })
	proxy := pipelinetest.ProxyT(t, redis.Addr, 0)
	c, err := NewRedis(proxy.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	r, b := ownedBatch(t, c, "aw"+strconv.FormatInt(time.Now().UnixNano(), 36), "", false)
	r.opts.KeepEvery = 20 * time.Millisecond
	stop := r.keepClaimed(b)
	defer stop()
	began := time.Now()
	// Keeps answered. A keep a starved process waits on for keepOverdue is
	// away by the product's own clock, and lapses once answered: that is
	// waited for, not a bound on the machine.
	time.Sleep(100 * time.Millisecond)
	pipelinetest.Eventually(t, 30*time.Second, "not away while keeps are answered", func() bool { return !b.RedisAwaySince(began) })
	proxy.Hold()
	held := time.Now()
	// Away comes keepOverdue into the hung keep, the keep's failure only
	// when the connection gives up (10 s on): the order is the check, the
	// time it takes is patience.
	pipelinetest.Eventually(t, 30*time.Second, "away while a keep hangs", func() bool { return b.RedisAwaySince(began) })
	if b.unkept.Load() != 0 {
		t.Fatalf("away only once the keep failed (%v after the hold)", time.Since(held))
	}
	proxy.Release()
	pipelinetest.Eventually(t, 10*time.Second, "the hung keep answered", func() bool { return b.unkept.Load() != 0 })
	if !b.RedisAwaySince(began) {
		t.Error("a round begun before the hang no longer sees it once the keep was answered")
	}
	time.Sleep(50 * time.Millisecond)
	after := time.Now()
	// Keeps answered again: a round begun after the spell does not see it.
	// (A keep overdue on a starved machine is away by the product's own
	// clock meanwhile, and lapses: waited for.)
	time.Sleep(100 * time.Millisecond)
	pipelinetest.Eventually(t, 30*time.Second, "a round begun after the keeps are answered again sees Redis there", func() bool { return !b.RedisAwaySince(after) })
}
