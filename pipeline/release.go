package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/rueidis"
)

// A stop is not a failure: an entry this process left pending because it
// was stopping (never handed to a handler, or left by one that saw
// Stopping) did nothing wrong, yet the next claim counted a delivery for
// it as for an entry that failed. Every rolling restart brought healthy
// entries one delivery nearer MaxDeliveries, and after enough deploys a
// slow webhook receiver's backlog went to the DLQ. So the runner gives
// such entries their delivery back as it lets them go (releaseAtStop).
//
// The same holds for a claim of this process's own that re-takes an entry
// it still has in hand (its keep came late): that claim is no delivery
// either, and is given back at once (notInHand). And a claim, or a read
// that does not block, which the stop comes in the middle of is let finish
// (claimStep, resumeChunk, linger): Redis counted its delivery whether or
// not its reply came, and handOff gives back what the stop leaves. The
// blocking read (readLoop) is still cut, as waiting for its reply would
// hold every stop up to Block (2 s by default): rueidis closes its
// connection at the cut, and Redis may have served it first. The read
// loop then gives back the deliveries of what it finds so delivered
// (giveBackCutRead).

// ErrStopping is what a handler returns, or marks entries with (Batch.Fail),
// when it leaves them because the process is stopping (Batch.Stopping), not
// because they failed: wrapped (errors.Is) is enough. The runner leaves
// them pending and gives back the delivery that brought them here, so a
// stop never counts toward MaxDeliveries. An error that is not ErrStopping
// counts, at a stop too: a handler cut off by ShutdownTimeout (its context
// ended) may be hanging on a poison entry, which must still reach the DLQ.
var ErrStopping = errors.New("shutting down; left pending")

// settleTimeout is how long past the end of the handlers' context (a stop
// cut at ShutdownTimeout) the runner still commits a batch whose handler
// returned, and gives back the deliveries of entries let go at a stop. A
// commit under the ended context itself acked nothing: a webhook POST in
// flight at the cut made its batch's delivered events go out again after
// the restart. Short: a stop lasts at most ShutdownTimeout plus this (plus
// noteErrorsTimeout for a batch left pending), within the 15 s the
// manifests give beyond --shutdown-timeout (deploy/README.md, Shutdown).
const settleTimeout = 3 * time.Second

// outliving is ctx that ends settleTimeout after ctx does (or at done): a
// commit started before the cut, or right after it, gets its answer.
func outliving(ctx context.Context) (context.Context, context.CancelFunc) {
	out, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(settleTimeout, cancel)
		context.AfterFunc(out, func() { t.Stop() })
	})
	return out, func() { stop(); cancel() }
}

// giveBackScript gives back one delivery of each of ids still pending for
// this consumer: XCLAIM to itself with RETRYCOUNT its count less one (JUSTID
// alone would keep it; a plain XCLAIM adds one). Its idle time starts again,
// as at a keep. Ids another consumer holds now, or acked, are left alone.
// Returns how many were given back.
//
// KEYS[1] input stream. ARGV: group, consumer, id1..idn.
var giveBackScript = rueidis.NewLuaScript(`
local group, consumer, n = ARGV[1], ARGV[2], 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], group, ARGV[i], ARGV[i], 1)
  if #p > 0 and p[1][2] == consumer then
    redis.call('XCLAIM', KEYS[1], group, consumer, 0, ARGV[i], 'RETRYCOUNT', math.max(p[1][4] - 1, 0), 'JUSTID')
    n = n + 1
  end
end
return n
`)

// releaseAtStop gives back the delivery of ids of stream, left pending
// because the runner stops (ErrStopping). Best effort: an entry it misses
// counts one delivery more, as before.
func (r *Runner) releaseAtStop(ctx context.Context, stream string, ids []string) {
	// Noted first, while they are still in hand: giveBackCutRead must
	// never take them for entries of a cut read.
	for _, id := range ids {
		r.letGo.Store(stream+"/"+id, struct{}{})
	}
	if err := r.giveBack(ctx, stream, ids); err != nil {
		r.log.Warn().Err(err).Int("entries", len(ids)).
			Msg("could not give back the deliveries of entries left pending at the stop; their next claim counts one more")
	}
}

// giveBack runs giveBackScript on ids of stream, all in one call, under its
// own settleTimeout: at a stop the runner's context has ended, and a claim
// cut by the stop must still give back what it took.
func (r *Runner) giveBack(ctx context.Context, stream string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	args := make([]string, 0, 2+len(ids))
	args = append(args, r.opts.Group, r.opts.Consumer)
	args = append(args, ids...)
	if err := giveBackScript.Exec(gctx, r.rdb, []string{stream}, args).Error(); err != nil {
		return fmt.Errorf("give back %s: %w", stream, err)
	}
	return nil
}

// stoppedIDs are the ids of b's entries the handler left for the stop
// (Fail with ErrStopping).
func (b *Batch) stoppedIDs() []string {
	var ids []string
	for i, err := range b.failed {
		if errors.Is(err, ErrStopping) {
			ids = append(ids, b.Entries[i].ID)
		}
	}
	return ids
}
