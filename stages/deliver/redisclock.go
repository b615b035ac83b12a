package deliver

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// redisClock is Redis's clock as this process reckons it: an entry's id
// holds the Redis time it was written at, and how long it waited is Redis's
// now minus that. Hosts' clocks may be tens of milliseconds apart, as much
// as the express lane's whole target, so the offset between the two is
// measured (a TIME call) rather than taken to be zero, and measured again
// every clockEvery, in the background: reading the clock never waits.
type redisClock struct {
	rdb rueidis.Client

	offset   atomic.Int64 // Redis's clock minus this process's, ns
	measured atomic.Int64 // this process's unix ns at the last measurement; 0: none yet
	busy     atomic.Bool  // a measurement is on its way
}

const (
	clockEvery = time.Minute
	// clockRTT: a TIME call slower than this says too little about when
	// Redis read its clock (somewhere within the call) to be used.
	clockRTT = 5 * time.Millisecond
)

// now is Redis's now as of this process's now.
func (c *redisClock) now(local time.Time) time.Time {
	if local.UnixNano()-c.measured.Load() > int64(clockEvery) && c.busy.CompareAndSwap(false, true) {
		go func() {
			defer c.busy.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			c.measure(ctx)
		}()
	}
	return local.Add(time.Duration(c.offset.Load()))
}

// measure takes the offset from one TIME call: Redis read its clock about
// halfway through it.
func (c *redisClock) measure(ctx context.Context) error {
	t0 := time.Now()
	at, err := pipeline.RedisTime(c.rdb.Do(ctx, c.rdb.B().Time().Build()))
	t1 := time.Now()
	if err != nil {
		return err
	}
	if rtt := t1.Sub(t0); rtt <= clockRTT {
		c.offset.Store(int64(at.Sub(t0.Add(rtt / 2))))
		c.measured.Store(t1.UnixNano())
	}
	return nil
}
