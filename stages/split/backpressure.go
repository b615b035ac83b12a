package split

import (
	"context"
	"errors"

	"github.com/pushpipe/pushpipe/pipeline"
)

// deliverGroup is the deliver stage's consumer group, whose backlog split
// watches.
const deliverGroup = "deliver"

// errBackedUp means the deliver backlog stayed above HighWater for MaxWait.
var errBackedUp = errors.New("deliver backlog above the high-water mark")

// backpressure returns a fresh limiter for one channel's loop (a
// Backpressure is not safe for concurrent use), or nil when disabled.
func (h *Handler) backpressure() *pipeline.Backpressure {
	if h.cfg.HighWater <= 0 {
		return nil
	}
	return &pipeline.Backpressure{
		Client:    h.cfg.Redis,
		Streams:   h.cfg.Keys.Streams(pipeline.StreamDeliver),
		Group:     deliverGroup,
		HighWater: h.cfg.HighWater,
	}
}

// wait returns once the deliver backlog is below the mark, or errBackedUp
// after MaxWait.
func (h *Handler) wait(ctx context.Context, bp *pipeline.Backpressure) error {
	if bp == nil {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, h.cfg.MaxWait)
	defer cancel()
	err := bp.Wait(wctx)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return errBackedUp
	}
	return err
}
