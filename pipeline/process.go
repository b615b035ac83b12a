package pipeline

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/redis/rueidis"
)

// process runs the handler on a batch, retrying whole-batch failures with
// backoff for RetryFor, then commits. The batch stays claimed (handOff) until
// process returns, and no longer: a batch left pending must go idle so that
// it is claimed again and, if poison, dead-lettered.
func (r *Runner) process(ctx context.Context, b *Batch) {
	if b.release != nil {
		defer b.release()
	}
	defer r.held.hold(b)()
	if ctx.Err() != nil {
		// Handed over as ShutdownTimeout ran out (a worker slow to start
		// on it): never handled, so the stop, not the entries, left them,
		// and their delivery goes back as a batch's never handed out does.
		// Returning without it left a claimed entry's count one higher.
		if stopping(b) {
			r.releaseAtStop(ctx, b.Stream, b.allIDs())
		}
		return
	}
	backoff := newBackoff(100*time.Millisecond, 5*time.Second)
	deadline := time.Now().Add(r.opts.RetryFor)
	for attempt := 1; ctx.Err() == nil; attempt++ {
		b.reset()
		start := time.Now()
		err := r.handle(ctx, b)
		r.metrics.handled(r.series(b.Lane, b.Partition), time.Since(start), err)
		var panicked *panicError
		if errors.As(err, &panicked) && len(b.Entries) > 1 {
			// Most likely one entry's input found the bug: handled one by
			// one, the others go through and it alone is retried and, in
			// the end, dead-lettered with the panic as its reason.
			r.processEach(ctx, b)
			return
		}
		var perm *PermanentError
		if errors.As(err, &perm) {
			for i := range b.Entries {
				b.DeadLetter(i, err)
			}
			err = nil
			b.emits, b.failed = nil, nil
		}
		if err == nil {
			// The handler finished: its commit outlives a cut at
			// ShutdownTimeout by settleTimeout, or a batch that returned
			// just then (a webhook POST in flight at the cut) acked nothing,
			// and what it had done was done again after the restart.
			cctx, settled := outliving(ctx)
			acked, cerr := r.commit(cctx, b)
			if cerr == nil && stopping(b) {
				r.releaseAtStop(cctx, b.Stream, b.stoppedIDs())
			}
			settled()
			if cerr == nil {
				r.failing.answered()
				r.metrics.acked(r.series(b.Lane, b.Partition), int(acked))
				if acked > 0 {
					r.markMoved()
				}
				// An entry that failed before came back by a claim, on
				// whichever consumer: the notes of a claimed batch's entries
				// done now go, the ones another consumer wrote too.
				notes := map[string]error{}
				var done []string
				for i, e := range b.Entries {
					if ferr, failed := b.failed[i]; failed {
						if !errors.Is(ferr, ErrStopping) {
							notes[e.ID] = ferr
						} // else a stop: the entry's last real error stays its note
						continue
					}
					if _, had := r.lastErr.LoadAndDelete(b.Stream + "/" + e.ID); had || b.claimed {
						done = append(done, e.ID)
					}
				}
				r.noteErrors(ctx, b.Stream, notes, done)
				return
			}
			if errors.Is(cerr, ErrLostOwnership) {
				r.log.Warn().Str("stream", b.Stream).Msg("batch was claimed by another consumer while handled; dropped")
				return
			}
			err = cerr
		}
		if b.IsLost() {
			// Someone else owns (some of) these entries now, or Redis lost
			// them: retrying here would race the new owner.
			r.log.Warn().Err(err).Str("stream", b.Stream).Msg("batch no longer ours; dropped")
			return
		}
		if time.Now().After(deadline) && !stopping(b) && ctx.Err() == nil && r.outlast(ctx, b, deadline.Add(-r.opts.RetryFor).UnixNano()) {
			deadline = time.Now().Add(r.opts.RetryFor) // Redis was what failed
			continue
		}
		giveUp := stopping(b) || time.Now().After(deadline) || ctx.Err() != nil
		// A stop is no error of the entries': noted, it would overwrite
		// the last real one, and a dead letter would say "shutting down".
		if giveUp && !errors.Is(err, ErrStopping) {
			// Left pending: whoever claims the entries next (this process
			// or another, or this one restarted) says why if it
			// dead-letters them.
			notes := make(map[string]error, len(b.Entries))
			for _, e := range b.Entries {
				notes[e.ID] = err
			}
			r.noteErrors(ctx, b.Stream, notes, nil)
		}
		if stopping(b) {
			if errors.Is(err, ErrStopping) {
				r.releaseAtStop(ctx, b.Stream, b.allIDs()) // the handler left them for the stop: no delivery counts
			}
			r.log.Info().Err(err).Str("stream", b.Stream).Int("entries", len(b.Entries)).
				Msg("shutting down: batch left pending for whoever claims it")
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			// Left to XAUTOCLAIM: its entries are claimed once idle
			// ClaimIdle, and redelivered, dead-lettered in the end if
			// poison. (A batch Redis failed is held instead: outlast.)
			r.log.Error().Err(err).Str("stream", b.Stream).Int("entries", len(b.Entries)).Int("attempts", attempt).
				Msg("batch failed; left pending for a later claim")
			return
		}
		// Not through r.down: a handler's error may be PostgreSQL's or a
		// provider's, and a dial error does not say whose. Logged once a
		// spell (r.failing), not once a batch and retry.
		r.failing.quiet(err)
		backoff.sleep(ctx)
	}
}

// handle runs the handler on b, turning a panic into b's error: a handler
// that panics on some input would otherwise take the process down (under
// `pushpipe all`, every stage) and again after each restart, since the
// entry is redelivered, repeating the sends in flight each time (deliver).
// As an error, the entry is retried, claimed and dead-lettered like any
// entry that keeps failing (DESIGN, guarantee 8).
func (r *Runner) handle(ctx context.Context, b *Batch) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error().Str("stream", b.Stream).Int("entries", len(b.Entries)).Interface("panic", p).
				Bytes("stack", debug.Stack()).Msg("handler panicked")
			err = &panicError{p}
		}
	}()
	return r.h.Handle(ctx, b)
}

// panicError is a handler's panic, as the error of its batch.
type panicError struct{ p any }

// Panic is the error a handler returns for a panic it recovered in a
// goroutine of its own (the runner can recover only the handler's): the
// runner treats it as the handler's panic, so the entry that found the bug
// is retried alone and in the end dead-lettered with the panic as its
// reason, and the process goes on.
func Panic(p any) error { return &panicError{p} }

func (e *panicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.p) }

// processEach processes b's entries as batches of one, in order, while b is
// still this consumer's: b stays claimed (its release is its caller's), and
// what is not processed stays pending for a later claim.
//
// At a stop, the entries not reached yet were never handed to a handler
// alone, and the stop, not they, left them: their delivery is given back
// (releaseAtStop), as a batch's never handed out is. The entry handled
// alone when the stop came, most likely the panic's own, keeps its count
// (its process gives back ErrStopping only). With none handled alone yet,
// the batch's panic was the only try all had, and whose it was is not
// known: all stay counted, as any batch failed at a stop, or a poison
// entry whose batch panicked at a stop would go uncounted.
func (r *Runner) processEach(ctx context.Context, b *Batch) {
	for i, e := range b.Entries {
		if ctx.Err() != nil || b.IsLost() || stopping(b) {
			if i > 0 && stopping(b) && !b.IsLost() {
				ids := make([]string, 0, len(b.Entries)-i)
				for _, e := range b.Entries[i:] {
					ids = append(ids, e.ID)
				}
				r.releaseAtStop(ctx, b.Stream, ids)
			}
			return
		}
		r.process(ctx, &Batch{Stream: b.Stream, Partition: b.Partition, Lane: b.Lane, Entries: []Entry{e},
			rdb: b.rdb, lost: b.lost, stop: b.stop, claimed: b.claimed, parent: b})
	}
}

// lastError is the last handler error of an entry, kept to say why it was
// dead-lettered if it comes back too often.
type lastError struct {
	msg string
	at  time.Time
}

// noteErrorsTimeout bounds the write of the notes of a batch left pending,
// which goes out even when the handlers' context ended (shutdown).
const noteErrorsTimeout = 5 * time.Second

// noteErrors records why entries of stream failed and are left pending
// (notes), and forgets the notes of entries done since (done), in this
// process (lastErr) and in Redis (errorsKey): the consumer that finds an
// entry delivered too often is often not the one that saw it fail (another
// process claimed it, or this one restarted), and the dead letter must
// still say why. Best effort: without Redis, the reason is the local one.
func (r *Runner) noteErrors(ctx context.Context, stream string, notes map[string]error, done []string) {
	if len(notes) == 0 && len(done) == 0 {
		return
	}
	now := time.Now()
	key := errorsKey(stream)
	var cmds rueidis.Commands
	if len(notes) > 0 {
		hset := r.rdb.B().Hset().Key(key).FieldValue()
		for id, err := range notes {
			r.lastErr.Store(stream+"/"+id, lastError{err.Error(), now})
			hset = hset.FieldValue(id, err.Error())
		}
		cmds = append(cmds, hset.Build(),
			r.rdb.B().Pexpire().Key(key).Milliseconds(r.errorHorizon().Milliseconds()).Build())
	}
	if len(done) > 0 {
		cmds = append(cmds, r.rdb.B().Hdel().Key(key).Field(done...).Build())
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), noteErrorsTimeout)
	defer cancel()
	for _, res := range r.rdb.DoMulti(wctx, cmds...) {
		if err := res.Error(); err != nil {
			r.log.Warn().Err(err).Str("stream", stream).Msg("could not keep the entries' errors in Redis")
			return
		}
	}
}

// errorHorizon is how long a note may still be needed: an entry failing
// every delivery is dead-lettered within MaxDeliveries claims.
func (r *Runner) errorHorizon() time.Duration {
	return max(r.opts.ClaimIdle*time.Duration(r.opts.MaxDeliveries+1), 10*time.Minute)
}

// forgetErrors drops notes no claim will need: the entry was acked since by
// another consumer (or this one in a later batch), or it would have been
// dead-lettered long ago. Without it, entries another consumer finished
// would stay here for the life of the process.
func (r *Runner) forgetErrors(now time.Time) {
	horizon := r.errorHorizon()
	r.lastErr.Range(func(id, v any) bool {
		if now.Sub(v.(lastError).at) > horizon {
			r.lastErr.Delete(id)
		}
		return true
	})
}

func stopping(b *Batch) bool {
	select {
	case <-b.stop:
		return true
	default:
		return false
	}
}
