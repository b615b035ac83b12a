package deliver

import (
	"math/rand/v2"
	"time"
)

// A user with devices that failed transiently comes back as a deliver entry
// of its own (pipeline.DeliverEntry with Rounds set), emitted by the runner
// with the batch's ack and released into the stream after the backoff
// (pipeline.Batch.EmitAt): a retry round resends to the user's devices that
// are not marked done yet, so the entry needs no tokens, and it shares the
// in-flight slots and the rate limit with everything else.

// backoff is the wait before round rounds+1: exponential with full jitter
// (so that the users of one outage do not all come back at once), never
// shorter than what the provider asked for in Retry-After.
func (h *Handler) backoff(rounds int, retryAfter time.Duration) time.Duration {
	ceil := h.cfg.RetryBase << min(rounds-1, 30)
	if ceil <= 0 || ceil > h.cfg.RetryMax {
		ceil = h.cfg.RetryMax
	}
	d := time.Duration(rand.Int64N(int64(ceil)) + 1)
	return max(d, min(retryAfter, h.cfg.RetryMax), time.Millisecond)
}
