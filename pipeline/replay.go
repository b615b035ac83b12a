package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/rueidis"
)

// ReplayOptions select the retained entries Replay re-injects.
//
// The window is inclusive at both ends: an id bound includes that entry, a
// time bound includes every entry of that millisecond. An open To stops at
// each partition's last entry as of the start of the replay, so replaying a
// stream into itself never reads its own re-injected entries.
type ReplayOptions struct {
	Stream   string // logical stream to read: ingest, campaigns, ranges, dedupe or deliver
	From, To Bound  // inclusive; zero = open
	Campaign string // only entries whose campaign field is this, or a results entry's message ("" = all)
	// Group, for results only, is the one consumer group (a webhook
	// receiver) to handle the re-injected entries (FieldGroup): the others
	// ack them unsent. Without it every receiver gets them again.
	Group string
	Force bool // set FieldForce=1 so dedupe/deliver bypass their marks (see FieldForce)
	// Again, with Force, forces also the entries an earlier forced replay
	// re-injected or wrote, which Force alone leaves out (replay_forced.go):
	// a second resend meant as one.
	Again      bool
	Into       string // logical stream to write to, default Stream; an entry keeps its partition
	Partitions []int  // partitions to replay, default all
	DryRun     bool   // count what would be re-injected, write nothing
	HighWater  int64  // wait while Into's stage has more than this outstanding (0 = never wait)
	PageSize   int    // entries per XRANGE page and per pipelined XADD call, default 500
}

// ReplayResult counts what a replay did.
type ReplayResult struct {
	Scanned  int64 // entries read in the window
	Injected int64 // entries re-injected (on a dry run: that would have been)
	Repeats  int64 // forced: users (or raw tokens) left out, re-injected already from an earlier entry
	// ForcedBefore counts, forced, the entries left out because a forced
	// replay re-injected them (or wrote them) already: this one's users went
	// out again then (replay_forced.go).
	ForcedBefore int64
	ByPart       map[int]int64 // injected per partition
	// Unfinished counts the entries of the window (of Campaign, if set)
	// left to their stage, not re-injected: pending in its group or not
	// read yet, so the stage handles them itself (replay_unfinished.go).
	Unfinished       int64
	UnfinishedByPart map[int]int64 // Unfinished per partition
}

// userPartitioned streams place an entry by its users' partition, so an entry
// may move between them and stay next to its seen and sent marks.
func userPartitioned(stream string) bool { return stream == StreamDedupe || stream == StreamDeliver }

// Check refuses options no replay can run with, whatever Redis holds: a
// stream that is no stage's input, --into, --force or --group where they do
// not apply, an empty window. The CLI asks it before it dials Redis.
func (o ReplayOptions) Check() error {
	if StageOf(o.Stream) == "" {
		return fmt.Errorf("cannot replay stream %q: replayable streams are the stages' inputs (%s)", o.Stream, strings.Join(StageStreams(), ", "))
	}
	if o.Into == "" {
		o.Into = o.Stream
	}
	if o.Into != o.Stream && !(userPartitioned(o.Stream) && userPartitioned(o.Into)) {
		return fmt.Errorf("cannot replay %s into %s: only dedupe and deliver share a partitioning; replay a stream into itself", o.Stream, o.Into)
	}
	if o.Force && !userPartitioned(o.Into) {
		return fmt.Errorf("--force applies to dedupe and deliver only: %s is idempotent by itself and has no marks to bypass", o.Into)
	}
	if o.Again && !o.Force {
		return errors.New("--again applies to --force only: it forces again what an earlier forced replay resent")
	}
	if o.Group != "" && o.Into != StreamResults {
		return fmt.Errorf("--group applies to results only (a webhook receiver's group), not %s: its stage has one group", o.Into)
	}
	if o.Campaign != "" && o.Stream == StreamIngest {
		return errors.New("ingest entries belong to no campaign: drop the campaign filter")
	}
	if !o.From.IsZero() && !o.To.IsZero() && o.To.end().less(o.From.start()) {
		return fmt.Errorf("empty window: --to %s is before --from %s", o.To, o.From)
	}
	return nil
}

// check is Check, then fills the defaults (Into, every partition, the page
// size) and refuses partitions the deployment has not.
func (o *ReplayOptions) check(keys Keys) error {
	if err := o.Check(); err != nil {
		return err
	}
	if o.Into == "" {
		o.Into = o.Stream
	}
	if len(o.Partitions) == 0 {
		for p := range keys.Partitions {
			o.Partitions = append(o.Partitions, p)
		}
	}
	for _, p := range o.Partitions {
		if p < 0 || p >= keys.Partitions {
			return fmt.Errorf("partition %d out of range 0..%d", p, keys.Partitions-1)
		}
	}
	if o.PageSize <= 0 {
		o.PageSize = 500
	}
	return nil
}

// Replay re-XADDs the retained entries of a window of one stream into a
// stage's input (by default the same stream), in id order per partition.
// Every stage is idempotent, so a replay without Force sends nothing that
// already went out; it re-drives what was lost or stuck. Entries keep their
// fields, except FieldForce, which is set when Force and removed otherwise.
//
// Only entries the stream's stage has finished (acked by its group) are
// re-injected, forced or not: those still pending in the group or not read
// yet are left to the stage, which handles them anyway, and counted in
// Unfinished (replay_unfinished.go says why, and which group decides).
//
// A replay interrupted halfway can be run again: what was re-injected twice
// is suppressed like any other repeat.
func Replay(ctx context.Context, c rueidis.Client, keys Keys, opts ReplayOptions) (ReplayResult, error) {
	res := ReplayResult{ByPart: map[int]int64{}, UnfinishedByPart: map[int]int64{}}
	if err := opts.check(keys); err != nil {
		return res, err
	}
	if err := checkGroup(ctx, c, keys, opts.Into, opts.Group); err != nil {
		return res, err
	}
	var bp *Backpressure
	if opts.HighWater > 0 && !opts.DryRun {
		bp = &Backpressure{Client: c, Streams: keys.Streams(opts.Into), Group: cmp.Or(opts.Group, StageOf(opts.Into)), HighWater: opts.HighWater}
	}
	for _, p := range opts.Partitions {
		if err := replayPartition(ctx, c, keys, p, &opts, bp, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

func replayPartition(ctx context.Context, c rueidis.Client, keys Keys, p int, opts *ReplayOptions, bp *Backpressure, res *ReplayResult) error {
	src, dst := keys.Stream(opts.Stream, p), keys.Stream(opts.Into, p)
	last, ok, err := lastID(ctx, c, src)
	if err != nil || !ok {
		return err
	}
	end := opts.To.end()
	if last.less(end) {
		end = last // snapshot: never chase entries written after the start
	}
	start := opts.From.start()
	if end.less(start) {
		return nil
	}
	left, err := newLeftToStage(ctx, c, src, replayGroup(opts))
	if err != nil {
		return err
	}
	var once resendOnce
	if opts.Force {
		once = resendOnce{}
	}
	cursor := start.String()
	for {
		page, err := c.Do(ctx, c.B().Xrange().Key(src).Start(cursor).End(end.String()).Count(int64(opts.PageSize)).Build()).AsXRange()
		if err != nil {
			return fmt.Errorf("replay: xrange %s: %w", src, err)
		}
		if len(page) == 0 {
			return nil
		}
		res.Scanned += int64(len(page))
		pending, err := left.pending(ctx, c, page[0].ID, page[len(page)-1].ID, opts.PageSize)
		if err != nil {
			return err
		}
		var (
			fvs   []map[string]string // the window's finished entries
			marks []string            // theirs in Keys.Replayed, forced
		)
		for _, e := range page {
			if opts.Campaign != "" && e.FieldValues[FieldCampaign] != opts.Campaign && e.FieldValues[FieldMessage] != opts.Campaign {
				continue
			}
			if left.unfinished(e.ID, pending) {
				res.Unfinished++
				res.UnfinishedByPart[p]++
				continue
			}
			fvs = append(fvs, e.FieldValues)
			if opts.Force {
				marks = append(marks, forcedMark(opts.Stream, e.ID))
			}
		}
		before := make([]bool, len(marks))
		if !opts.Again {
			before, err = forcedBefore(ctx, c, keys.Replayed(p), marks)
		}
		if err != nil {
			return err
		}
		var msgs []Message
		var msgMarks []string
		for i, fv := range fvs {
			if once != nil {
				var n int64
				var keep bool
				fv, n, keep = once.filter(fv)
				if before[i] {
					// Its users went out again with the replay that forced
					// it: they are this one's repeats too, left out.
					res.ForcedBefore++
					continue
				}
				res.Repeats += n
				if !keep {
					continue
				}
				msgMarks = append(msgMarks, marks[i])
			}
			if !opts.Force {
				delete(fv, FieldForceDevices) // part of the force it drops (FieldForceDevices)
			}
			msgs = append(msgs, Message{Stream: dst, Fields: replayFields(fv, opts.Force, opts.Group)})
		}
		if len(msgs) > 0 && !opts.DryRun {
			if err := bp.Wait(ctx); err != nil {
				return fmt.Errorf("replay: %w", err)
			}
			var ids []string
			if opts.Force {
				if ids, err = emitForced(ctx, c, keys.Replayed(p), opts.Into, opts.Again, msgMarks, msgs); err == nil {
					ids = slices.DeleteFunc(ids, func(id string) bool { return id == "" })
					res.ForcedBefore += int64(len(msgs) - len(ids)) // another replay forced them meanwhile
				}
			} else {
				ids, err = Emit(ctx, c, msgs...)
			}
			res.Injected += int64(len(ids))
			res.ByPart[p] += int64(len(ids))
			if err != nil {
				return fmt.Errorf("replay into %s: %w", dst, err)
			}
		} else if opts.DryRun {
			res.Injected += int64(len(msgs))
			res.ByPart[p] += int64(len(msgs))
		}
		if len(page) < opts.PageSize {
			return nil
		}
		cursor = "(" + page[len(page)-1].ID // exclusive start (Redis ≥ 6.2)
	}
}

// checkGroup refuses a --group that reads no partition of stream: the
// entries named for it would be acked unsent by every other group, and
// handled by none.
func checkGroup(ctx context.Context, c rueidis.Client, keys Keys, stream, group string) error {
	if group == "" {
		return nil
	}
	groups, err := StreamGroups(ctx, c, keys.Streams(stream))
	if err != nil {
		return fmt.Errorf("replay: groups of %s: %w", stream, err)
	}
	var names []string
	for _, gs := range groups {
		for _, g := range gs {
			if g.Name == group {
				return nil
			}
			if !slices.Contains(names, g.Name) {
				names = append(names, g.Name)
			}
		}
	}
	slices.Sort(names)
	return fmt.Errorf("no group %s reads %s (its groups: %s): give the --group of the receiver's pushpipe webhook", group, stream, cmp.Or(strings.Join(names, ", "), "none"))
}

// replayFields flattens an entry's fields in a stable order, with FieldForce
// set or removed, and FieldGroup set to group or removed (a replay is for
// every group that reads the stream, a dead letter's retry for its own).
func replayFields(fv map[string]string, force bool, group string) []string {
	names := make([]string, 0, len(fv)+1)
	for f := range fv {
		if f != FieldForce && f != FieldGroup {
			names = append(names, f)
		}
	}
	slices.Sort(names)
	out := make([]string, 0, 2*len(names)+4)
	for _, f := range names {
		out = append(out, f, fv[f])
	}
	if force {
		out = append(out, FieldForce, "1")
	}
	if group != "" {
		out = append(out, FieldGroup, group)
	}
	return out
}

// lastID is the id of a stream's newest entry; ok is false when it has none.
func lastID(ctx context.Context, c rueidis.Client, stream string) (streamID, bool, error) {
	xs, err := c.Do(ctx, c.B().Xrevrange().Key(stream).End("+").Start("-").Count(1).Build()).AsXRange()
	if err != nil {
		return streamID{}, false, fmt.Errorf("replay: last entry of %s: %w", stream, err)
	}
	if len(xs) == 0 {
		return streamID{}, false, nil
	}
	id, err := parseID(xs[0].ID)
	return id, err == nil, err
}

// Resplit re-drives a campaign from its source after Redis lost data (a
// restart without a synced AOF, a failover): it appends the campaign to the
// campaigns stream, exactly as the API does when it is created, so split cuts
// its ranges again from PostgreSQL. Split's range ids are deterministic and
// dedupe's seen marks and deliver's sent marks suppress everyone already
// reached, so only what was lost goes out. The caller checks that the
// campaign exists.
func Resplit(ctx context.Context, c rueidis.Client, keys Keys, campaign string) (string, error) {
	if campaign == "" {
		return "", errors.New("resplit: no campaign id")
	}
	ids, err := Emit(ctx, c, Message{
		Stream: keys.Stream(StreamCampaigns, keys.HashPartition(campaign)),
		Fields: []string{FieldCampaign, campaign},
	})
	if err != nil {
		return "", fmt.Errorf("resplit %s: %w", campaign, err)
	}
	return ids[0], nil
}
