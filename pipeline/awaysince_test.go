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
	time.Sleep(100 * time.Millisecond) // keeps answered
	if b.RedisAwaySince(began) {
		t.Fatal("away while every keep is answered")
	}
	proxy.Hold()
	held := time.Now()
	pipelinetest.Eventually(t, 5*time.Second, "away while a keep hangs", func() bool { return b.RedisAwaySince(began) })
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
	time.Sleep(100 * time.Millisecond) // keeps answered again
	if b.RedisAwaySince(after) {
		t.Error("a round begun after the keeps are answered again sees Redis away")
	}
}
