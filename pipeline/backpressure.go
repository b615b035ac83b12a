package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/rueidis"
)

// Outstanding is the work a group has not finished on some streams: entries
// not yet read (lag) plus entries read but not acked (pending).
func Outstanding(ctx context.Context, c rueidis.Client, streams []string, group string) (int64, error) {
	all, err := StreamGroups(ctx, c, streams)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, gs := range all {
		for _, g := range gs {
			if g.Name != group {
				continue
			}
			n += g.Pending
			if g.Lag > 0 {
				n += g.Lag
			}
		}
	}
	return n, nil
}

// Backpressure makes a producer wait while its downstream group has more than
// HighWater entries outstanding, so Redis memory stays bounded however large a
// campaign is. The check is cached for Interval so hot producers do not
// flood Redis with XINFO calls.
type Backpressure struct {
	Client    rueidis.Client
	Streams   []string // the downstream stream's partitions
	Group     string   // the downstream stage's group
	HighWater int64    // 0 disables
	Interval  time.Duration

	checked time.Time
	last    int64
}

// Wait returns once the downstream is below the high-water mark. It is not safe
// for concurrent use; give each producer goroutine its own.
func (b *Backpressure) Wait(ctx context.Context) error {
	if b == nil || b.HighWater <= 0 {
		return nil
	}
	interval := b.Interval
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	for {
		if time.Since(b.checked) >= interval {
			n, err := Outstanding(ctx, b.Client, b.Streams, b.Group)
			if err != nil {
				return fmt.Errorf("backpressure: %w", err)
			}
			b.last, b.checked = n, time.Now()
		}
		if b.last <= b.HighWater {
			return nil
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
