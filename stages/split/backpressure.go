package split

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
)

// deliverGroup is the deliver stage's consumer group, whose backlog split
// watches.
const deliverGroup = "deliver"

// errBackedUp means the deliver backlog stayed above HighWater for MaxWait.
var errBackedUp = errors.New("deliver backlog above the high-water mark")

// backlogCheck is how often the deliver backlog is read (XINFO GROUPS on
// every partition); all of a process's segment cutters share the reading.
const backlogCheck = 200 * time.Millisecond

// backlog caches the deliver group's outstanding entries for every cutter.
type backlog struct {
	mu      sync.Mutex
	checked time.Time
	last    int64
}

// wait returns once the deliver backlog is at or below HighWater, or
// errBackedUp after MaxWait. HighWater 0 disables it.
func (h *Handler) wait(ctx context.Context) error {
	if h.cfg.HighWater <= 0 {
		return nil
	}
	deadline := time.Now().Add(h.cfg.MaxWait)
	for {
		n, err := h.outstanding(ctx)
		if err != nil {
			return err
		}
		if n <= h.cfg.HighWater {
			return nil
		}
		if time.Now().After(deadline) {
			return errBackedUp
		}
		t := time.NewTimer(backlogCheck)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (h *Handler) outstanding(ctx context.Context) (int64, error) {
	b := &h.backlog
	b.mu.Lock()
	defer b.mu.Unlock()
	if time.Since(b.checked) < backlogCheck {
		return b.last, nil
	}
	n, err := pipeline.Outstanding(ctx, h.cfg.Redis, h.cfg.Keys.Streams(pipeline.StreamDeliver), deliverGroup)
	if err != nil {
		return 0, err
	}
	b.last, b.checked = n, time.Now()
	return n, nil
}
