package pipeline

import (
	"sync"
	"sync/atomic"
	"time"
)

// A consumer cut off from Redis, or stalled (a GC pause, a VM paused, a
// SIGSTOP), for longer than ClaimIdle loses its pending entries to another
// consumer's XAUTOCLAIM, but learns it (Lost) only from a keep that
// reaches Redis: cut off, never. Meanwhile its handler went on starting
// provider requests the claimer makes too. XAUTOCLAIM takes an entry only
// once it was idle ClaimIdle by Redis's clock, and its idle time starts
// again when it is read (XREADGROUP, XCLAIM, XAUTOCLAIM) or kept
// (keepScript). So the consumer that notes on its own monotonic clock when
// it sent the read, or the last keep that found every entry of the batch
// still its own, knows that nobody can have claimed them before that plus
// ClaimIdle: the batch's lease (Batch.Held).

// leaseMargin is what the lease leaves out of ClaimIdle: this process's
// clock may run a little slow against Redis's, and a peer may run with a
// slightly shorter --claim-idle (a rollout changing it). A tenth: 3 s of
// the default 30 s, and far above KeepEvery (at most 250 ms), which renews
// the lease, so a healthy process never waits on it.
func leaseMargin(claimIdle time.Duration) time.Duration { return claimIdle / 10 }

// lease is until when a batch's entries are surely this consumer's.
type lease struct {
	span  time.Duration             // ClaimIdle less leaseMargin
	until atomic.Pointer[time.Time] // monotonic: a wall clock step changes nothing
	mu    sync.Mutex
	next  chan struct{} // closed at the next renewal, then replaced
}

// newLease starts a lease of span from sent, when the read or claim that
// delivered the entries was sent.
func newLease(sent time.Time, claimIdle time.Duration) *lease {
	l := &lease{span: claimIdle - leaseMargin(claimIdle), next: make(chan struct{})}
	until := sent.Add(l.span)
	l.until.Store(&until)
	return l
}

// held reports whether the lease runs at now.
func (l *lease) held(now time.Time) bool { return now.Before(*l.until.Load()) }

// renew extends the lease to span from sent, when a keep that found every
// entry still ours was sent (a keep sent earlier and answered later never
// shortens it), and wakes whoever waits for it.
func (l *lease) renew(sent time.Time) {
	until := sent.Add(l.span)
	l.mu.Lock()
	defer l.mu.Unlock()
	if until.After(*l.until.Load()) {
		l.until.Store(&until)
	}
	close(l.next)
	l.next = make(chan struct{})
}

// renewed is closed at the next renewal.
func (l *lease) renewed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}
