package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// dlqSelect is how retry and drop pick their letters: ids, or --all
// (narrowed by the filters). Nothing is selected by default.
type dlqSelect struct {
	IDs []string `arg:"" optional:"" name:"id" help:"Dead letter ids."`
	All bool     `help:"Every dead letter (narrowed by --stream/--campaign/--group)."`
	dlqFilterFlags
}

// Validate refuses a selection of nothing, or of ids and filters, before
// Redis is dialled.
func (s dlqSelect) Validate() error {
	_, err := s.filter()
	return errors.Join(err, validLetterIDs(s.IDs), s.dlqFilterFlags.Validate())
}

func (s dlqSelect) filter() (pipeline.DLQFilter, error) {
	switch {
	case len(s.IDs) > 0 && (s.All || s.Stream != "" || s.Campaign != "" || s.Group != ""):
		return pipeline.DLQFilter{}, errors.New("give dead letter ids, or --all with optional --stream/--campaign/--group, not both")
	case len(s.IDs) == 0 && !s.All:
		return pipeline.DLQFilter{}, errors.New("say which: dead letter ids, or --all (narrowed by --stream/--campaign/--group)")
	}
	return pipeline.DLQFilter{IDs: s.IDs, Stream: s.Stream, Campaign: s.Campaign, Group: s.Group}, nil
}

// DLQRetryCmd is `pushpipe dlq retry`.
type DLQRetryCmd struct{ dlqSelect }

// Run retries: each letter's original fields go back to its original
// partition (fresh delivery count) for the group that dead-lettered it, and
// the letter is deleted only after that XADD succeeded. Stages are
// idempotent, so nobody gets a notification twice.
func (c *DLQRetryCmd) Run(g *Globals) error {
	return c.apply(g, "retried", (*pipeline.DLQ).Retry)
}

// DLQDropCmd is `pushpipe dlq drop`.
type DLQDropCmd struct{ dlqSelect }

// Run drops.
func (c *DLQDropCmd) Run(g *Globals) error {
	return c.apply(g, "dropped", (*pipeline.DLQ).Drop)
}

// apply runs op (Retry or Drop) on the selected dead letters.
func (s dlqSelect) apply(g *Globals, did string, op func(*pipeline.DLQ, context.Context, pipeline.DLQFilter) (pipeline.DLQResult, error)) error {
	f, err := s.filter()
	if err != nil {
		return err
	}
	rdb, err := g.RedisNow()
	if err != nil {
		return err
	}
	defer rdb.Close()
	var failing []receiverLetters
	if did == "retried" {
		failing = lettersOfFailingReceivers(g.Context(), rdb, g.Keys(), f)
	}
	err = applyTo(g.Context(), pipeline.NewDLQ(rdb, g.Keys()), f, did, op, os.Stdout, os.Stderr)
	warnFailingReceivers(os.Stderr, failing)
	return err
}

// receiverLetters is how many of a retry's letters are of a webhook group
// whose receiver fails now.
type receiverLetters struct {
	webhook.Failure
	Letters int
}

// lettersOfFailingReceivers counts, by group, the letters f selects that a
// webhook group dead-lettered while its receiver still fails: retried, they
// go back to that receiver and, after --max-deliveries, to the DLQ again,
// and "retried 2 dead letters" read as settled. Read before the retry (it
// deletes the letters); nothing when no receiver fails, the usual case,
// or when Redis cannot say (the retry reports that itself).
func lettersOfFailingReceivers(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, f pipeline.DLQFilter) []receiverLetters {
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	failures, err := webhook.Failures(ctx, rdb, keys)
	if err != nil || len(failures) == 0 || (f.Stream != "" && f.Stream != pipeline.StreamResults) {
		return nil
	}
	f.Stream = pipeline.StreamResults
	letters, err := pipeline.NewDLQ(rdb, keys).List(ctx, f)
	if err != nil {
		return nil
	}
	count := map[string]int{}
	for _, d := range letters {
		if _, ok := failures[d.Group]; ok && d.Name == pipeline.StreamResults {
			count[d.Group]++
		}
	}
	var out []receiverLetters
	for _, group := range slices.Sorted(maps.Keys(count)) {
		out = append(out, receiverLetters{Failure: failures[group], Letters: count[group]})
	}
	return out
}

// warnFailingReceivers says on w which retried letters go back to a
// receiver that fails now.
func warnFailingReceivers(w io.Writer, failing []receiverLetters) {
	for _, r := range failing {
		fmt.Fprintf(w, "warning: %s went back to webhook group %s, whose receiver fails now (for %s, last: %s): "+
			"they come back to the DLQ after --max-deliveries unless it accepts first; pushpipe status says when it does, then retry\n",
			plural(int64(r.Letters), "retried letter"), r.Group, pipeline.Ago(time.Since(r.Since)), r.Err)
	}
}

// applyTo runs op on the letters f selects within dlqApplyTimeout, says
// on w how many it did and on errw why the rest were left.
func applyTo(ctx context.Context, q *pipeline.DLQ, f pipeline.DLQFilter, did string,
	op func(*pipeline.DLQ, context.Context, pipeline.DLQFilter) (pipeline.DLQResult, error), w, errw io.Writer) error {
	// The DLQ's master first, within status's bound: op's own is longer.
	if _, err := within(ctx, refreshTimeout, q.Len); err != nil {
		return err
	}
	res, err := within(ctx, dlqApplyTimeout, func(ctx context.Context) (pipeline.DLQResult, error) { return op(q, ctx, f) })
	if err == nil && ctx.Err() == nil && slices.ContainsFunc(slices.Collect(maps.Values(res.Failed)), timedOut) {
		// The letters whose partition's master did not answer are left
		// in place, each "context deadline exceeded": say why once.
		err = fmt.Errorf("no answer within %s for some (a Redis node down or unreachable?): they are left in place, run the command again once it answers", dlqApplyTimeout)
	}
	if err == nil && len(res.Done) == 0 && len(res.Failed) == 0 && len(res.Busy) == 0 {
		if err := unknownGroup(ctx, q, f.Group); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "%s %s\n", did, plural(int64(len(res.Done)), "dead letter"))
	warnBadInput(errw, res)
	if len(res.Busy) > 0 {
		// Not a failure: the other run re-injects them (or did already).
		// A killed run's letters are taken at once (pipeline/dlqholder.go):
		// these are a live run's, or one Redis could not say was gone.
		fmt.Fprintf(w, "%s left to another retry running at the same time (re-injected by it, or to be); "+
			"if that run hangs (paused, or its connection stuck), run this again in a minute\n", plural(int64(len(res.Busy)), "dead letter"))
	}
	return errors.Join(err, reportFailed(errw, res))
}

// warnBadInput says on w which of the retried letters had been
// dead-lettered as bad input (pipeline.BadInput, whichever stage and
// words): the stage refuses the same fields again, and "retried 1 dead
// letter" read as fixed while the letter was back in the DLQ within
// seconds. Dropping it is what settles it.
func warnBadInput(w io.Writer, res pipeline.DLQResult) {
	ids := slices.Clone(res.BadInput)
	if len(ids) == 0 {
		return
	}
	slices.SortFunc(ids, compareEntryIDs)
	which := ids[0] + ": " + res.Reasons[ids[0]]
	if len(ids) > 1 {
		which = fmt.Sprintf("%s … %s; the first: %s", ids[0], ids[len(ids)-1], res.Reasons[ids[0]])
	}
	fmt.Fprintf(w, "warning: %d of them had been dead-lettered as bad input (%s): the stage refuses the same fields again, "+
		"so they will be back in the DLQ within seconds; drop those instead: pushpipe dlq list shows their new ids, pushpipe dlq drop ID removes them\n",
		len(ids), which)
}

// dlqApplyTimeout bounds a retry or a drop, and list's count by reason:
// with a master down, the client retries the letters of its partitions
// until it answers, and the command hung for the whole outage. Longer than
// refreshTimeout: a healthy --all over a large DLQ takes many round trips.
const dlqApplyTimeout = 30 * time.Second

// timedOut is whether a letter's failure is the bound running out.
func timedOut(why string) bool { return strings.HasSuffix(why, context.DeadlineExceeded.Error()) }

// reportFailed says on w why dead letters were left in place, one line per
// reason: the 112 letters of a retired receiver were 112 lines of the same
// words, and the count at the end scrolled away from the advice.
func reportFailed(w io.Writer, res pipeline.DLQResult) error {
	if len(res.Failed) == 0 {
		return nil
	}
	byReason := map[string][]string{}
	for id, why := range res.Failed {
		byReason[why] = append(byReason[why], id)
	}
	for _, ids := range byReason {
		slices.SortFunc(ids, compareEntryIDs)
	}
	reasons := slices.SortedFunc(maps.Keys(byReason), func(a, b string) int { return compareEntryIDs(byReason[a][0], byReason[b][0]) })
	for _, why := range reasons {
		ids := byReason[why]
		switch len(ids) {
		case 1:
			fmt.Fprintf(w, "  %s left in place: %s\n", ids[0], why)
		case 2:
			fmt.Fprintf(w, "  %s and %s left in place: %s\n", ids[0], ids[1], why)
		default:
			fmt.Fprintf(w, "  %d dead letters (%s … %s) left in place: %s\n", len(ids), ids[0], ids[len(ids)-1], why)
		}
	}
	if len(res.Failed) == 1 {
		return errors.New("1 dead letter was left in place")
	}
	return fmt.Errorf("%d dead letters were left in place", len(res.Failed))
}
