package devices

import (
	"sync/atomic"
	"time"
)

// Clock stamps events with unix microseconds that strictly increase within
// one process: two writes of one token (two items of a batch, or two requests
// in the same microsecond, or across a wall-clock step back) never get the
// same or a reversed time, so "the latest event wins" means "the last one
// accepted wins". The zero Clock is ready to use.
type Clock struct {
	last atomic.Int64
	now  func() time.Time // for tests; nil is time.Now
}

// Stamp reserves n consecutive stamps and returns the first.
func (c *Clock) Stamp(n int) int64 {
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	for {
		last := c.last.Load()
		first := max(now().UnixMicro(), last+1)
		if c.last.CompareAndSwap(last, first+int64(n)-1) {
			return first
		}
	}
}
