package pipeline

import (
	"context"
	"time"
)

// A batch failing past RetryFor is left pending for a claim, so that a
// poison entry is redelivered and in the end dead-lettered. But a batch
// that failed because its Redis master was down (a restart, a failover
// longer than RetryFor) is not poison, and a claim comes only once its
// entries were idle ClaimIdle since the last keep that reached Redis:
// 15–22 s after the master was back at the defaults, for a direct message
// as for a campaign. So while Redis is what fails, process holds on to
// the batch instead, and tries it again once Redis answers.
//
// Trying again is safe only while the entries are still this consumer's:
// after an outage longer than ClaimIdle, another consumer's claim may take
// them the moment Redis is back, and the background keep would notice
// only at its next tick, after a retry had started (two handlers of one
// deliver entry send twice). The keep outlast makes before the retry is
// the decision: one script that resets the entries' idle time if all are
// still ours (then no claim takes them for ClaimIdle) or says they are
// taken (keepScript).

// outlast is asked by process for a batch past RetryFor that failed (its
// tries since the unix ns since): it keeps the batch, a keep every
// KeepEvery, while Redis does not answer for its stream, and reports
// whether the batch should be tried again, for another RetryFor: Redis
// answers now, every entry is still pending for this consumer, and Redis
// failed this stream meantime (a keep of the batch, in the background or
// here, could not reach it). A batch that failed with its stream's Redis answering all
// along is given up, as before, whatever other masters do; so is one whose
// entries another consumer took, or whose process stops.
func (r *Runner) outlast(ctx context.Context, b *Batch, since int64) bool {
	ids := b.allIDs()
	waited := false
	for ctx.Err() == nil && !stopping(b) {
		sent := time.Now()
		kept, _, err := r.keep(ctx, b.Stream, ids)
		switch {
		case err == nil:
			if b.lease != nil && kept == len(ids) {
				b.lease.renew(sent) // the retry may start sends at once (a part's is its root's: the background keep's)
			}
			// Every entry, not merely none taken: an entry acked meanwhile
			// was another consumer's, which claimed it while Redis was back
			// and we waited for our next keep, and handled it through (only
			// a commit acks, and ours failed). Retrying would handle it twice.
			// (Unless our own commit acked dead letters before it failed:
			// then we cannot tell, and leave the batch to a claim.)
			return kept == len(ids) && (waited || b.RedisAwaySince(time.Unix(0, since)))
		case unreachable(err):
			r.down.quiet(err)
			waited = true
			// As often as the batch is kept: it goes on the moment Redis is back.
			select {
			case <-ctx.Done():
			case <-time.After(r.opts.KeepEvery):
			}
		default:
			return false // Redis answered, with an error: NOGROUP, the stream lost
		}
	}
	return false
}
