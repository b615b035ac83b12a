package deliver

import (
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// Redis's clock as the process reckons it: what a measurement found, and
// measured again in the background once stale. Here a host whose clock is
// 80 ms off Redis's (the offset set by hand) is measured right.
func TestRedisClockFollowsRedis(t *testing.T) {
	f := newFixture(t)
	c := &redisClock{rdb: f.rdb}
	if err := c.measure(f.ctx); err != nil {
		t.Fatal(err)
	}
	if off := time.Duration(c.offset.Load()); off.Abs() > clockRTT {
		t.Fatalf("Redis on this host is %v off this process's clock, want within %v", off, clockRTT)
	}

	c.offset.Store(int64(80 * time.Millisecond))
	local := time.Now()
	if got := c.now(local); !got.Equal(local.Add(80 * time.Millisecond)) {
		t.Errorf("now with an offset of 80ms = %v after local, want 80ms", got.Sub(local))
	}
	c.measured.Store(time.Now().Add(-2 * clockEvery).UnixNano()) // stale: the next read measures again
	pipelinetest.Eventually(t, 10*time.Second, "the stale offset measured again", func() bool {
		c.now(time.Now()) // measures again while stale (a call slower than clockRTT is not used)
		return time.Duration(c.offset.Load()).Abs() <= clockRTT
	})
}
