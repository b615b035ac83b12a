package push

import (
	"context"
	"sync/atomic"
)

// Warmup lets the first request of a sender go alone: until one request has
// had an answer over the connection, the others wait for it. A burst of
// concurrent first sends would otherwise each dial a TLS connection of its
// own (the HTTP/2 transport only reuses a connection it has), and all but a
// few would be thrown away; after the first answer the connection and the
// provider's stream limit are known, and the transport puts requests on it
// and dials another only when it is full.
type Warmup struct {
	warm atomic.Bool
	gate chan struct{} // a token: held by the request going alone
}

// NewWarmup returns a gate that is cold.
func NewWarmup() *Warmup {
	w := &Warmup{gate: make(chan struct{}, 1)}
	w.gate <- struct{}{}
	return w
}

// Do runs send, alone while the gate is cold. answered reports whether the
// provider answered (the connection is up): then the gate opens for good.
// A waiter whose ctx ends gives up with ctx's error, without sending.
func (w *Warmup) Do(ctx context.Context, send func() (answered bool)) error {
	if w.warm.Load() {
		send()
		return nil
	}
	select {
	case <-w.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	if w.warm.Load() { // opened while this one waited
		w.gate <- struct{}{}
		send()
		return nil
	}
	if send() {
		w.warm.Store(true)
	}
	w.gate <- struct{}{}
	return nil
}
