package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/alecthomas/kong"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// DLQCmd inspects and requeues dead letters: entries a stage gave up on, with
// the reason, their origin and their original fields.
type DLQCmd struct {
	List  DLQListCmd  `cmd:"" help:"Count dead letters by stage and reason, then list them, oldest first."`
	Show  DLQShowCmd  `cmd:"" help:"Show one dead letter in full, original fields included."`
	Retry DLQRetryCmd `cmd:"" help:"Re-inject dead letters into their original stream partition, then delete them."`
	Drop  DLQDropCmd  `cmd:"" help:"Delete dead letters for good."`
}

// dlqFilterFlags narrow a list, retry or drop.
type dlqFilterFlags struct {
	Stream   string `help:"Only dead letters from this stream (${stage_streams})."`
	Campaign string `help:"Only dead letters of this campaign."`
	Group    string `help:"Only dead letters of this consumer group: a stage, or a webhook receiver's --group."`
}

// Validate refuses a --stream no dead letter can come from: the filter
// matches names exactly, so a typo listed, retried or dropped nothing and
// said so as if the DLQ held none of that stream's. A --campaign or
// --group no campaign or group can have is refused too, before Redis is
// dialled: with Redis down, the typo was said only once it was back.
func (f dlqFilterFlags) Validate() error {
	var errs []error
	if f.Stream != "" && !slices.Contains(pipeline.StageStreams(), f.Stream) {
		errs = append(errs, fmt.Errorf("--stream %q: dead letters come from the stage inputs only, one of %s",
			f.Stream, strings.Join(pipeline.StageStreams(), ", ")))
	}
	if f.Campaign != "" {
		errs = append(errs, validID("--campaign", f.Campaign))
	}
	if f.Group != "" && !webhook.ValidGroupName(f.Group) {
		errs = append(errs, fmt.Errorf("--group %q: a group is a word of letters, digits, '.', '_' or '-': a stage's name, such as deliver, "+
			"or a webhook receiver's --group", f.Group))
	}
	return errors.Join(errs...)
}

// unknownGroup is nil unless group (--group) names no group that can
// dead-letter; then it names the ones there are. "0 shown" for a misspelt
// group read as an empty DLQ. Asked only when the filter matched nothing:
// a retired receiver's letters match though its group reads no more.
func unknownGroup(ctx context.Context, q *pipeline.DLQ, group string) error {
	if group == "" {
		return nil
	}
	groups, err := within(ctx, refreshTimeout, func(ctx context.Context) ([2][]string, error) {
		stages, others, err := q.Groups(ctx)
		return [2][]string{stages, others}, err
	})
	if err != nil {
		return err
	}
	stages, others := groups[0], groups[1]
	if slices.Contains(stages, group) || slices.Contains(others, group) {
		return nil
	}
	known := "the stages' " + strings.Join(stages, ", ")
	if len(others) > 0 {
		known += "; webhook receivers' " + strings.Join(others, ", ")
	}
	return fmt.Errorf("--group %q: no consumer group of that name, nor dead letters of one; the groups are %s", group, known)
}

// DLQListCmd is `pushpipe dlq list`.
type DLQListCmd struct {
	dlqFilterFlags
	Limit int  `default:"100" help:"Show at most this many (0: all)."`
	JSON  bool `name:"json" help:"Print NDJSON, one dead letter a line."`
}

// Validate checks the filter, and --limit: a negative one listed every
// letter, as 0 does, without a word.
func (c *DLQListCmd) Validate() error {
	if c.Limit < 0 {
		return errors.Join(c.dlqFilterFlags.Validate(), fmt.Errorf("--limit: must be 0 (all) or more, got %d", c.Limit))
	}
	return c.dlqFilterFlags.Validate()
}

// dlqSummaryMax bounds how many dead letters list reads to count them by
// reason: every dead letter of a big outage is a few KB of fields to read
// and decode, and the oldest 100,000 say what happened.
const dlqSummaryMax = 100_000

// Run lists.
func (c *DLQListCmd) Run(g *Globals) error {
	rdb, err := g.RedisNow()
	if err != nil {
		return err
	}
	defer rdb.Close()
	return c.run(g.Context(), pipeline.NewDLQ(rdb, g.Keys()), os.Stdout)
}

// run prints the dead letters counted by stage and reason first, then the
// oldest --limit of them one by one. After an outage the DLQ holds
// thousands of letters of a handful of causes: what an on-call engineer
// needs first is those causes and how many each, which page after page of
// letters hid; the letters below give ids for show, retry and drop. The
// summary is always there (no --summary to remember): the listing is
// already bounded by --limit. --json stays one dead letter a line, for
// the scripts that read it.
func (c *DLQListCmd) run(ctx context.Context, q *pipeline.DLQ, w io.Writer) error {
	f := pipeline.DLQFilter{Stream: c.Stream, Campaign: c.Campaign, Group: c.Group, Limit: c.Limit}
	// Bounded as status is: with the DLQ's master down the client retries
	// until it answers, and list hung for the whole outage.
	letters, err := within(ctx, refreshTimeout, func(ctx context.Context) ([]pipeline.DeadLetter, error) { return q.List(ctx, f) })
	if err != nil {
		return err
	}
	if len(letters) == 0 {
		if err := unknownGroup(ctx, q, c.Group); err != nil {
			return err
		}
	}
	if c.JSON {
		enc := json.NewEncoder(w)
		for _, d := range letters {
			if err := enc.Encode(d); err != nil {
				return err
			}
		}
		return nil
	}
	total, err := within(ctx, refreshTimeout, q.Len)
	if err != nil {
		return err
	}
	// Up to dlqSummaryMax letters to read: more time than one page.
	sum, err := within(ctx, dlqApplyTimeout, func(ctx context.Context) (pipeline.DLQSummary, error) { return q.Summary(ctx, f, dlqSummaryMax) })
	if err != nil {
		return err
	}
	now := time.Now()
	if len(sum.Reasons) > 0 {
		counted := "by stage and reason"
		if sum.Capped {
			counted += ", of the oldest " + thousands(sum.Read)
		}
		fmt.Fprintf(w, "Dead letters %s:\n", counted)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "COUNT\tSTAGE\tLATEST\tREASON")
		reasons := make([]string, len(sum.Reasons))
		for i, r := range sum.Reasons {
			reasons[i] = r.Reason
		}
		reasons = clipAll(reasons, 100)
		for i, r := range sum.Reasons {
			fmt.Fprintf(tw, "%s\t%s\t%s ago\t%s\n", thousands(r.Count), r.Stage, now.Sub(r.Newest).Round(time.Second), reasons[i])
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAGE\tSTREAM\tORIGINAL ID\tDELIVERIES\tCAMPAIGN\tREASON")
	reasons := make([]string, len(letters))
	for i, d := range letters {
		reasons[i] = oneLine(firstNonEmpty(d.Malformed, d.Error))
	}
	reasons = clipAll(reasons, 100)
	for i, d := range letters {
		origin := d.Stream
		if d.Malformed == "" {
			origin = fmt.Sprintf("%s/p%d", d.Name, d.Partition)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, now.Sub(d.At).Round(time.Second), origin, d.OrigID,
			d.Deliveries, firstNonEmpty(d.Campaign(), "-"), reasons[i])
	}
	tw.Flush()
	fmt.Fprintln(w, shownLine(len(letters), c.Stream != "" || c.Campaign != "" || c.Group != "", sum, total))
	return nil
}

// shownLine ends the list. Under a filter it says how many letters match
// beside how many the DLQ holds: "2 shown, 10 dead letters in total" under
// --campaign read as eight more of that campaign's letters left unlisted,
// when they were other campaigns'. The matching count is the summary's, so
// it is bounded as the summary is: past its cap it says "over".
func shownLine(shown int, filtered bool, sum pipeline.DLQSummary, total int64) string {
	if !filtered {
		return fmt.Sprintf("%d shown, %s in total", shown, plural(total, "dead letter"))
	}
	matching := thousands(sum.Read)
	if sum.Capped {
		matching = "over " + matching
	}
	return fmt.Sprintf("%d shown of %s matching, %s in total", shown, matching, plural(total, "dead letter"))
}

// DLQShowCmd is `pushpipe dlq show ID`.
type DLQShowCmd struct {
	ID   string `arg:"" help:"The dead letter's id (from dlq list)."`
	JSON bool   `name:"json" help:"Print JSON."`
}

// Validate refuses an id no dead letter can have before Redis is dialled.
func (c *DLQShowCmd) Validate(kctx *kong.Context) error {
	if !given(kctx, "id") {
		return nil // kong says it is required
	}
	return validLetterIDs([]string{c.ID})
}

// validLetterIDs says every id of ids that no dead letter can have, each
// as an ID argument.
func validLetterIDs(ids []string) error {
	var errs []error
	for _, id := range ids {
		if err := pipeline.CheckDeadLetterID(id); err != nil {
			errs = append(errs, fmt.Errorf("ID %w", err))
		}
	}
	return errors.Join(errs...)
}

// Run shows one dead letter; id batches (u, m) are decoded.
func (c *DLQShowCmd) Run(g *Globals) error {
	rdb, err := g.RedisNow()
	if err != nil {
		return err
	}
	defer rdb.Close()
	q := pipeline.NewDLQ(rdb, g.Keys())
	d, err := within(g.Context(), refreshTimeout, func(ctx context.Context) (pipeline.DeadLetter, error) { return q.Show(ctx, c.ID) })
	if err != nil {
		return err
	}
	if c.JSON {
		return json.NewEncoder(os.Stdout).Encode(d)
	}
	printDeadLetter(os.Stdout, d)
	return nil
}

func printDeadLetter(w io.Writer, d pipeline.DeadLetter) {
	fmt.Fprintf(w, "id          %s (%s)\n", d.ID, d.At.Format(time.RFC3339Nano))
	fmt.Fprintf(w, "from        %s entry %s (group %s, consumer %s)\n", d.Stream, d.OrigID, d.Group, d.Consumer)
	fmt.Fprintf(w, "deliveries  %d\n", d.Deliveries)
	fmt.Fprintf(w, "reason      %s\n", d.Error)
	if d.Malformed != "" {
		fmt.Fprintf(w, "MALFORMED   %s (cannot be retried; drop it)\n", d.Malformed)
	}
	fmt.Fprintln(w, "fields")
	for _, f := range slices.Sorted(maps.Keys(d.Fields)) {
		v := fieldValue(f, d.Fields[f])
		if f == pipeline.FieldEvents {
			v = eventsValue(d.Fields, v)
		}
		fmt.Fprintf(w, "  %-10s %s\n", f, v)
	}
}

// eventsValue shows a results entry's events (binary records, printed
// quoted they were a screen of escapes): how many, and the first few as
// results tail prints their outcome; raw when they do not decode.
func eventsValue(fields map[string]string, raw string) string {
	evs, err := pipeline.ParseResults(fields)
	if err != nil {
		return raw
	}
	parts := make([]string, 0, 6)
	for i, e := range evs {
		if i == 5 {
			parts = append(parts, "…")
			break
		}
		p := fmt.Sprintf("user %d %s %s", e.UserID, e.Platform, e.Outcome)
		if e.Reason != "" {
			p += " (" + e.Reason + ")"
		}
		parts = append(parts, p)
	}
	return fmt.Sprintf("%s: %s", plural(int64(len(evs)), "event"), strings.Join(parts, "; "))
}

// fieldValue shows a field readably: id batches decoded, binary quoted.
func fieldValue(name, v string) string {
	if name == pipeline.FieldUsers || name == pipeline.FieldMuted {
		if ids, err := pipeline.DecodeIDs(v); err == nil {
			parts := make([]string, 0, 11)
			for i, id := range ids {
				if i == 10 {
					parts = append(parts, "…")
					break
				}
				parts = append(parts, strconv.FormatInt(id, 10))
			}
			return fmt.Sprintf("%d user ids: %s", len(ids), strings.Join(parts, " "))
		}
	}
	if !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 }) {
		return strconv.Quote(v)
	}
	return v
}

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
	return applyTo(g.Context(), pipeline.NewDLQ(rdb, g.Keys()), f, did, op, os.Stdout, os.Stderr)
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
	if len(res.Busy) > 0 {
		// Not a failure: the other run re-injects them (or did already).
		// A killed run's letters are taken at once (pipeline/dlqholder.go):
		// these are a live run's, or one Redis could not say was gone.
		fmt.Fprintf(w, "%s left to another retry running at the same time (re-injected by it, or to be); "+
			"if that run hangs (paused, or its connection stuck), run this again in a minute\n", plural(int64(len(res.Busy)), "dead letter"))
	}
	return errors.Join(err, reportFailed(errw, res))
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

// compareEntryIDs orders stream entry ids (ms-seq) as Redis does: "-10"
// after "-9".
func compareEntryIDs(a, b string) int {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	if c := cmp.Compare(len(am), len(bm)); c != 0 {
		return c
	}
	if c := strings.Compare(am, bm); c != 0 {
		return c
	}
	if c := cmp.Compare(len(as), len(bs)); c != 0 {
		return c
	}
	return strings.Compare(as, bs)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// clip cuts s to n runes, keeping both ends: reasons of one kind begin
// alike ("decode ingest entry ...: invalid character ...") and what tells
// them apart is often at the end.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	head := (n - 1) * 2 / 3
	return string(r[:head]) + "…" + string(r[len(r)-(n-1-head):])
}

// clipAll clips each of reasons to n runes (clip), but leaves whole those
// that would read the same as another once clipped: cut at 100 runes,
// malformed entries whose errors differed past the cut were listed as
// identical rows, each with its own count.
func clipAll(reasons []string, n int) []string {
	by := map[string]map[string]bool{} // clipped → the reasons clipped to it
	for _, r := range reasons {
		c := clip(r, n)
		if by[c] == nil {
			by[c] = map[string]bool{}
		}
		by[c][r] = true
	}
	out := make([]string, len(reasons))
	for i, r := range reasons {
		out[i] = clip(r, n)
		if len(by[out[i]]) > 1 {
			out[i] = r
		}
	}
	return out
}
