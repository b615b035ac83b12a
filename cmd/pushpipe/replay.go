package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// ReplayCmd re-injects retained entries of a stream into a stage's input, or
// re-splits a campaign from PostgreSQL after Redis lost data.
type ReplayCmd struct {
	Stream    string `help:"Stream to replay, one a stage reads: ${stage_streams}."`
	From      string `help:"Window start, inclusive: an entry id (1700000000000-0), unix ms, an RFC 3339 time, or a duration ago (15m)."`
	To        string `help:"Window end, inclusive (same forms; a time includes its whole millisecond). Default: the stream's last entry when the replay starts."`
	Campaign  string `help:"Only entries of this campaign (or, of results, this direct message)."`
	Group     string `help:"Of results only: the webhook receiver (its --group) to POST the entries again; the other receivers skip them. Without it every receiver gets them again."`
	Force     bool   `help:"Resend even what was already sent: marks the entries force=1, which dedupe and deliver honour by bypassing their seen/sent marks; each user once, however many copies of it the window holds (deliver's retries, dlq retries, earlier replays), and each device once: what the provider fails in the resend is retried alone; and each entry once: a second forced replay (at once, or run again) leaves out the entries a forced replay re-injected or wrote (--again resends them too). Entries their stage has not finished are left to it, unforced. Only for --stream/--into dedupe or deliver."`
	Again     bool   `help:"With --force: resend also the entries an earlier forced replay resent (a second resend meant as one, e.g. the first went to a provider still failing)."`
	Into      string `help:"Stream to write to (default: the replayed stream itself). dedupe and deliver may be replayed into each other; entries keep their partition."`
	Partition []int  `help:"Only these partitions (repeatable; default all)."`
	DryRun    bool   `help:"Count what would be re-injected (with --resplit: check the campaign exists); write nothing."`
	HighWater int64  `default:"100000" help:"Pause while the target stage has more than this many entries outstanding (0: never)."`
	Resplit   bool   `help:"Instead of a window: append --campaign to the campaigns stream again so split re-cuts it from PostgreSQL (after Redis lost data); a campaign still scheduled is scheduled again for its send_at. Marks suppress everyone already reached."`
	JSON      bool   `name:"json" help:"Print the result as JSON."`
}

// windowFlags are the flags of a window replay: --resplit re-runs the
// campaign from PostgreSQL and would ignore them.
var windowFlags = []string{"stream", "from", "to", "force", "into", "group", "partition", "high-water", "json"}

// Validate refuses, with --resplit, the flags it would ignore: an operator
// who narrows a resplit to a partition or a stream would otherwise
// re-append the whole campaign thinking it narrowed. Given flags are read
// from the command line, as --high-water has a default.
func (c *ReplayCmd) Validate(kctx *kong.Context) error {
	if !c.Resplit {
		return c.validWindow()
	}
	if c.Campaign == "" {
		return errors.New("--resplit needs --campaign ID")
	}
	var given []string
	for _, p := range kctx.Path {
		if p.Flag != nil && slices.Contains(windowFlags, p.Flag.Name) && !slices.Contains(given, "--"+p.Flag.Name) {
			given = append(given, "--"+p.Flag.Name)
		}
	}
	if len(given) > 0 {
		return fmt.Errorf("--resplit takes only --campaign (and --dry-run), not %s: it re-runs the whole campaign from PostgreSQL, not a window",
			strings.Join(given, ", "))
	}
	return nil
}

// Run replays. Without --force nothing already sent is sent again: every
// stage is idempotent (dedupe's seen marks, deliver's sent marks, ingest's
// event times), so a replay re-drives only what was lost or stuck. Entries
// their stage has not finished (pending or unread) are left to it.
func (c *ReplayCmd) Run(g *Globals) error {
	if c.Resplit {
		return c.resplit(g)
	}
	// Read again: a duration ago counts from now, not from the parse.
	now := time.Now()
	from, err := pipeline.ParseBound(c.From, now)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	to, err := pipeline.ParseBound(c.To, now)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	rdb, err := g.RedisNow()
	if err != nil {
		return err
	}
	defer rdb.Close()
	return c.replay(g.Context(), rdb, g.Keys(), from, to, os.Stdout)
}

// validWindow checks a window replay's flags before Redis is dialled, every
// problem at once: a stream no stage reads, or --force on ingest, was
// refused only once Redis answered, and with Redis down not at all.
func (c *ReplayCmd) validWindow() error {
	var errs []error
	if c.Stream == "" || c.From == "" {
		errs = append(errs, errors.New("replay needs --stream and --from (a window start; use --from 0 for everything retained), or --resplit --campaign ID"))
	}
	now := time.Now()
	from, err := pipeline.ParseBound(c.From, now)
	if err != nil {
		errs = append(errs, fmt.Errorf("--from: %w", err))
	}
	to, err := pipeline.ParseBound(c.To, now)
	if err != nil {
		errs = append(errs, fmt.Errorf("--to: %w", err))
	}
	// Each was refused by nothing: a negative --high-water never paused,
	// as 0 does, and a --campaign or --partition no entry can have
	// re-injected nothing, as if the window held none of it.
	if c.HighWater < 0 {
		errs = append(errs, fmt.Errorf("--high-water: must be 0 (never pause) or more entries outstanding, got %d", c.HighWater))
	}
	if c.Campaign != "" {
		errs = append(errs, validID("--campaign", c.Campaign))
	}
	for _, p := range c.Partition {
		if p < 0 {
			errs = append(errs, fmt.Errorf("--partition: partitions count from 0, got %d", p))
			break
		}
	}
	if c.Stream != "" && len(errs) == 0 {
		errs = append(errs, pipeline.ReplayOptions{Stream: c.Stream, From: from, To: to, Campaign: c.Campaign, Force: c.Force,
			Again: c.Again, Into: c.Into, Group: c.Group}.Check())
	}
	return errors.Join(errs...)
}

// replay runs the window replay and prints what it did to w. A replay that
// stopped halfway prints its counts before the error, so the operator knows
// how much went in; one refused before it read anything (a stream that is no
// stage's input, --force on ingest, an empty window) prints only the error,
// not a "re-injected 0 of 0" that reads as a replay that ran.
func (c *ReplayCmd) replay(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, from, to pipeline.Bound, w io.Writer) error {
	opts := pipeline.ReplayOptions{
		Stream: c.Stream, From: from, To: to, Campaign: c.Campaign, Force: c.Force, Again: c.Again, Into: c.Into, Group: c.Group,
		Partitions: c.Partition, DryRun: c.DryRun, HighWater: c.HighWater,
	}
	res, err := pipeline.Replay(ctx, rdb, keys, opts)
	if err != nil && res.Scanned == 0 {
		return err
	}
	// A window reaching past what the stream keeps replayed the part kept
	// and said nothing of the rest: said, with the time it is kept from.
	through, trimmed, terr := pipeline.Trimmed(ctx, rdb, keys.Streams(c.Stream), from)
	if terr != nil && err == nil {
		return terr
	}
	if c.JSON {
		out := map[string]any{
			"stream": c.Stream, "into": firstNonEmpty(c.Into, c.Stream), "from": from.String(), "to": to.String(),
			"campaign": c.Campaign, "group": c.Group, "force": c.Force, "dry_run": c.DryRun,
			"scanned": res.Scanned, "injected": res.Injected, "repeats_left_out": res.Repeats, "forced_before_left_out": res.ForcedBefore, "by_partition": res.ByPart,
			"unfinished_left_to_stage": res.Unfinished, "unfinished_by_partition": res.UnfinishedByPart,
		}
		if trimmed {
			out["kept_from"] = through.Format(time.RFC3339Nano)
		}
		json.NewEncoder(w).Encode(out)
	} else {
		verb := "re-injected"
		if c.DryRun {
			verb = "would re-inject"
		}
		mode := "idempotent: only what never went out will be sent"
		if c.Force {
			mode = "forced: dedupe/deliver bypass their marks, these entries are sent again"
			if res.Repeats > 0 {
				mode += fmt.Sprintf(", each user once: %s repeats left out", thousands(res.Repeats))
			}
			if res.ForcedBefore > 0 {
				mode += fmt.Sprintf(", each entry once: %s forced by an earlier replay left out (--again resends them too)", thousands(res.ForcedBefore))
			}
		}
		if firstNonEmpty(c.Into, c.Stream) == pipeline.StreamResults {
			// The webhook has no marks: whoever reads results POSTs them again.
			mode = "every webhook receiver POSTs them again; receivers dedupe by event id"
			if c.Group != "" {
				mode = "receiver " + c.Group + " POSTs them again, the others skip them; receivers dedupe by event id"
			}
		}
		// Entries the stage has not finished are its own to deliver: a copy
		// would race them (pipeline/replay_unfinished.go).
		// Forced, it says they are not: their stage sends only what it has
		// not sent yet.
		var left string
		if res.Unfinished > 0 {
			left = fmt.Sprintf("; %s still pending or unread: their stage delivers them", thousands(res.Unfinished))
			if c.Force {
				left += ", unforced (run this again once they are done to force them too)"
			}
		}
		fmt.Fprintf(w, "%s %s of %s entries of %s [%s .. %s] into %s (%s)%s\n", verb, thousands(res.Injected), thousands(res.Scanned),
			c.Stream, from, to, firstNonEmpty(c.Into, c.Stream), mode, left)
		if trimmed {
			fmt.Fprintf(w, "%s keeps its entries from %s on, older ones trimmed past the stages' --retention: any between %s and then are not in this replay\n",
				c.Stream, through.Format(time.RFC3339), from)
		}
		// A mistyped --campaign matched nothing and read as "nothing of it
		// was lost": "re-injected 0 of 27" alone does not tell the two apart.
		// Not after a replay that failed part way: its entries may match.
		if err == nil && c.Campaign != "" && res.Scanned > 0 && res.Injected == 0 && res.Repeats == 0 && res.Unfinished == 0 {
			fmt.Fprintf(w, "none of them is of campaign or direct message %s: check the id (pushpipe campaigns list, pushpipe messages list), or start --from earlier\n",
				c.Campaign)
		}
	}
	return err
}

func (c *ReplayCmd) resplit(g *Globals) error {
	db, err := g.DB(1)
	if err != nil {
		return fmt.Errorf("resplit reads the campaign from PostgreSQL: %w", err)
	}
	defer db.Close()
	rdb, err := g.RedisNow()
	if err != nil {
		return err
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(g.Context(), 10*time.Second)
	defer cancel()
	if c.DryRun {
		camp, err := campaign.Load(ctx, db, c.Campaign)
		if errors.Is(err, campaign.ErrNotFound) {
			return noCampaign(c.Campaign)
		}
		if err != nil {
			return err
		}
		if camp.State == campaign.StateScheduled {
			fmt.Printf("would schedule campaign %s again for its send_at, %s: it has not started\n",
				c.Campaign, camp.SendAt.UTC().Format(time.RFC3339))
			return nil
		}
		fmt.Printf("would append campaign %s (%s) to campaigns: split would re-cut it from PostgreSQL; dedupe and sent marks would suppress everyone already reached\n",
			c.Campaign, camp.State)
		return nil
	}
	id, err := campaign.Resplit(ctx, rdb, db, g.Keys(), c.Campaign)
	if errors.Is(err, campaign.ErrNotFound) {
		// A typo must not send split an entry it can only dead-letter.
		return noCampaign(c.Campaign)
	}
	if err != nil {
		return err
	}
	if id == "" { // still scheduled: campaign.Resplit queued its start again
		fmt.Printf("campaign %s is scheduled: it starts at its send_at, as before (pushpipe status %s says when)\n", c.Campaign, c.Campaign)
		return nil
	}
	fmt.Printf("campaign %s appended to campaigns as %s: split re-cuts it from PostgreSQL; dedupe and sent marks suppress everyone already reached\n", c.Campaign, id)
	return nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
