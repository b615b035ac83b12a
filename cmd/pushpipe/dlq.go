package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// DLQCmd inspects and requeues dead letters: entries a stage gave up on, with
// the reason, their origin and their original fields.
type DLQCmd struct {
	List  DLQListCmd  `cmd:"" help:"List dead letters, oldest first, then count them by stage and reason."`
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

// run prints the oldest --limit dead letters one by one, then the dead
// letters counted by stage and reason, then how many were shown. After an
// outage the DLQ holds thousands of letters of a handful of causes: what
// an on-call engineer needs is those causes and how many each, which page
// after page of letters hid; the letters give ids for show, retry and
// drop. The counts come last, where a terminal leaves them in view (first,
// a --limit of 100 scrolled them away), and so that the first row under
// the header is a letter, as under kubectl's or docker's: a script that
// took it got "COUNT". The summary is always there (no --summary to
// remember): the listing is already bounded by --limit. --json stays one
// dead letter a line, for the scripts that read it.
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
	// Both read before a line is written: an error prints no half list.
	now := time.Now()
	tw := newTable(w, 0)
	fmt.Fprintln(tw, "ID\tAGE\tSTREAM\tORIGINAL ID\tDELIVERIES\tCAMPAIGN\tREASON")
	reasons := make([]string, len(letters))
	bad := 0
	for i, d := range letters {
		reasons[i] = oneLine(firstNonEmpty(d.Malformed, d.Error))
		// Marked by the stage that refused it (pipeline.BadInput): the
		// row says so before anyone retries it, as retry warns after.
		if d.BadInput && d.Malformed == "" {
			reasons[i] = "bad input: " + reasons[i]
			bad++
		}
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
	if len(sum.Reasons) > 0 {
		counted := "by stage and reason"
		if sum.Capped {
			counted += ", of the oldest " + thousands(sum.Read)
		}
		fmt.Fprintf(w, "\nDead letters %s:\n", counted)
		tw := newTable(w, 0)
		fmt.Fprintln(tw, "COUNT\tSTAGE\tLATEST\tREASON")
		reasons := make([]string, len(sum.Reasons))
		for i, r := range sum.Reasons {
			reasons[i] = r.Reason
			if r.Said != "" {
				reasons[i] += pipeline.ReceiverSaid + r.Said // the newest letter's
			}
		}
		reasons = clipAll(reasons, 100)
		for i, r := range sum.Reasons {
			fmt.Fprintf(tw, "%s\t%s\t%s ago\t%s\n", thousands(r.Count), r.Stage, now.Sub(r.Newest).Round(time.Second), reasons[i])
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, shownLine(len(letters), c.Stream != "" || c.Campaign != "" || c.Group != "", sum, total))
	if bad > 0 {
		it, is := "them", "are"
		if bad == 1 {
			it, is = "it", "is"
		}
		fmt.Fprintf(w, "%s shown %s bad input: a retry brings %s back; drop %s (pushpipe dlq drop) once what wrote %s is fixed.\n",
			plural(int64(bad), "letter"), is, it, it, it)
	}
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
	if head, said, ok := strings.Cut(s, pipeline.ReceiverSaid); ok {
		return clipSaid(head, said, n)
	}
	head := (n - 1) * 2 / 3
	return string(r[:head]) + "…" + string(r[len(r)-(n-1-head):])
}

// clipSaid clips a webhook reason, head + ReceiverSaid + said, to n runes:
// a third for the receiver's words, from their start, and the rest for the
// head's end ("… last: answered 500 Internal Server Error"), or from its
// status on when the end is advice after it, since cut in the middle as
// other reasons are, the status went and the words stayed.
func clipSaid(head, said string, n int) string {
	const sep = "; said: "
	q := []rune(said)
	k := min(len(q), n/3)
	if k < len(q) {
		said = string(q[:k-1]) + "…"
	}
	h := []rune(head)
	room := n - k - len([]rune(sep))
	if len(h) <= room {
		return head + sep + said
	}
	end := string(h[len(h)-(room-1):])
	i := strings.LastIndex(head, "answered ")
	if i < 0 || strings.Contains(end, "answered ") {
		return "…" + end + sep + said
	}
	// From the status on, cut at its end: a 401's or 413's advice follows
	// its status ("answered 401 Unauthorized: the receiver refused the
	// request; check that ..."), and the head's end alone kept the advice
	// and dropped the status it is about.
	s := []rune(head[i:])
	if len(s) > room-1 {
		s = append(s[:room-2], '…')
	}
	return "…" + string(s) + sep + said
}

// clipAll clips each of reasons to n runes (clip), but leaves whole those
// that would read the same as another of another cause once clipped: cut at 100 runes,
// malformed entries whose errors differed past the cut were listed as
// identical rows, each with its own count.
func clipAll(reasons []string, n int) []string {
	by := map[string]map[string]bool{} // clipped → the reasons clipped to it
	for _, r := range reasons {
		c := clip(r, n)
		if by[c] == nil {
			by[c] = map[string]bool{}
		}
		// Not what receivers said: their words differ by a request id
		// and would show every letter of one outage whole.
		cause, _, _ := strings.Cut(r, pipeline.ReceiverSaid)
		by[c][cause] = true
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
