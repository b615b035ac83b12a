package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// refreshTimeout bounds one refresh of a command that watches (status,
// send --wait). While a Redis Cluster master is down, the client retries a
// read of its slots until the node answers: unbounded, status hung for the
// whole outage and a watch froze without the failure line it promises.
const refreshTimeout = 5 * time.Second

// within runs read with at most d of ctx, its error saying that nothing
// answered when d ran out (rather than ctx: that is the caller's end).
func within[T any](ctx context.Context, d time.Duration, read func(context.Context) (T, error)) (T, error) {
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	v, err := read(rctx)
	// The client may give up a little before d with the dead node's own
	// error (connection refused): the same outage, the same advice.
	var netErr *net.OpError
	if err != nil && ctx.Err() == nil && (errors.Is(rctx.Err(), context.DeadlineExceeded) || errors.As(err, &netErr)) {
		err = fmt.Errorf("no answer within %s (a Redis node down or unreachable?): %w", d, err)
	}
	return v, err
}
