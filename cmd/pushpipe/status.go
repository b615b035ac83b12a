package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// StatusCmd shows every stage stream (length, lag and pending per group,
// consumers, and whether the group's processes run, idle, are stuck or
// stopped), the dead letters and, given a campaign id, its progress.
//
// --wait follows one campaign or message as send --wait does: one created
// through the API (or by another shell) had no way to be waited for, and
// status answered --wait with "unknown flag --wait" and no suggestion.
type StatusCmd struct {
	Campaign   string        `arg:"" optional:"" name:"id" help:"Also show this campaign's or direct message's progress."`
	JSON       bool          `name:"json" help:"Print JSON (one object per refresh with --watch) for scripts. With --watch, a refresh that failed is a line of its own with the keys at and error, and the next one retries."`
	Watch      bool          `help:"Refresh until Ctrl-C."`
	Wait       bool          `help:"Follow the campaign or direct message ID to its end, as send --wait does (one created through the API, or by another shell): its progress, the summary, and send --wait's exit status: 0 when it is done, 1 when it failed or was canceled, 3 when it is done but every device it tried failed, 4 when it is done but people had no device of its app. Ctrl-C stops the following (exit 0)."`
	Interval   time.Duration `default:"1s" help:"Refresh interval with --watch or --wait."`
	Detail     bool          `short:"d" help:"Show every partition and its consumers, not only the per-stream totals."`
	RemoveIdle time.Duration `name:"remove-idle" help:"First remove consumers idle this long that hold no pending entries (e.g. 1h)."`
}

// statusReport is what one refresh shows; it is also the --json output.
type statusReport struct {
	At       time.Time               `json:"at"`
	Streams  []pipeline.StreamStatus `json:"streams"`
	DLQ      int64                   `json:"dlq"`
	Campaign *progressView           `json:"campaign,omitempty"`
	Removed  []string                `json:"removed_consumers,omitempty"`
	// Failing are the webhook receivers failing now, by group, as their
	// processes recorded it: a failing receiver's group read "running".
	Failing map[string]webhook.Failure `json:"receivers_failing,omitempty"`
	// Paused are the webhook receivers that asked for a pause (a
	// Retry-After, a 429 or 503), by group: what is left of it. Its group
	// read idle, its events waiting, with nothing saying why.
	Paused map[string]time.Duration `json:"receivers_paused_ns,omitempty"`
	// RetiredRunning are the groups retired (results retire --force) whose
	// process still runs, idle: gone from the streams, they show nowhere else.
	RetiredRunning []string `json:"retired_still_running,omitempty"`
}

// minInterval is the shortest time a flag may set between two rounds of a
// loop that asks Redis or kills processes: `status --watch --interval 1ns`
// refreshed without a pause, one core and Redis busy for a screen no one
// can read that fast. (deliver's --retry-base and --retry-max take the
// stage's own floor, deliver.MinRetry.)
const minInterval = 100 * time.Millisecond

// Validate refuses a refresh interval that would spin or never come.
func (c *StatusCmd) Validate() error {
	var errs []error
	if c.Interval < minInterval {
		errs = append(errs, fmt.Errorf("--interval must be %v or more, such as 1s (a refresh asks Redis about every stream), got %v", minInterval, c.Interval))
	}
	// A negative one removed nothing, without a word.
	if c.RemoveIdle < 0 {
		errs = append(errs, fmt.Errorf("--remove-idle must be a positive duration such as 1h (consumers idle that long, holding nothing, are removed), got %v", c.RemoveIdle))
	}
	if c.Campaign != "" {
		errs = append(errs, validID("ID", c.Campaign))
	}
	if c.Wait && c.Campaign == "" {
		errs = append(errs, errors.New("--wait: give the id of the campaign or direct message to follow (pushpipe status ID --wait)"))
	}
	if c.Wait && (c.Watch || c.JSON) {
		errs = append(errs, errors.New("--wait follows one campaign or message to its end, with an exit status; --watch and --json refresh the whole status: give one or the other"))
	}
	return errors.Join(errs...)
}

// Run prints the status once, or every --interval with --watch.
func (c *StatusCmd) Run(g *Globals) error {
	rdb, err := g.RedisNow()
	if err != nil {
		return err
	}
	defer rdb.Close()
	ctx, keys := g.Context(), g.Keys()
	out := os.Stdout
	tty := isatty.IsTerminal(out.Fd())
	src := c.source(g, rdb, keys)
	if src.db != nil {
		defer src.db.Close()
	}
	if c.Wait {
		return c.wait(ctx, src, out, tty)
	}
	return c.refresh(ctx, rdb, keys, src, out, tty)
}

// wait follows the campaign or message to its end (--wait), as send --wait
// does, and returns what send --wait's exit status is made of.
func (c *StatusCmd) wait(ctx context.Context, src campaignSource, out io.Writer, tty bool) error {
	err := follow(ctx, src, c.Campaign, out, tty, c.Interval, byStatus)
	if errors.Is(err, campaign.ErrNotFound) {
		return unknownID(c.Campaign)
	}
	return err
}

// unknownID is status's answer to an id that names no campaign or message.
// Said once, with where to look: the wrapped form read `campaign x:
// campaign "x": campaign not found`. Both lists: a message's id, looked
// for in campaigns list, was not there.
func unknownID(id string) error {
	return fmt.Errorf("no campaign or direct message %s: check the id (pushpipe campaigns list shows the campaigns, pushpipe messages list the direct messages)", id)
}

// source is where the campaign's progress is read: Redis, and PostgreSQL
// when configured and the command names a campaign. PostgreSQL down is
// when status is needed most: the streams and the campaign's counters are
// in Redis, so it shows them and says the state is missing, where it
// failed as a whole.
func (c *StatusCmd) source(g *Globals, rdb rueidis.Client, keys pipeline.Keys) campaignSource {
	src := campaignSource{rdb: rdb, keys: keys}
	if c.Campaign != "" && g.DatabaseURL != "" {
		src.db, src.dbDown = g.DB(2)
	}
	return src
}

// statusFailed is a refresh that failed, in --json --watch: a script reading
// the NDJSON parses every line, and tells this one by its error key.
type statusFailed struct {
	At    time.Time `json:"at"`
	Error string    `json:"error"`
}

// refresh prints the status to out once, or every --interval with --watch
// until ctx is done.
func (c *StatusCmd) refresh(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, src campaignSource, out io.Writer, tty bool) error {
	for {
		rep, err := within(ctx, refreshTimeout, func(ctx context.Context) (statusReport, error) { return c.collect(ctx, rdb, keys, src) })
		if err != nil && c.Watch && ctx.Err() != nil {
			return nil // Ctrl-C or SIGTERM during a refresh: the end of the watch, not a failure
		}
		if err != nil && !c.Watch {
			return err
		}
		switch {
		case err != nil && c.JSON:
			if err := json.NewEncoder(out).Encode(statusFailed{At: time.Now().UTC(), Error: err.Error()}); err != nil {
				return err
			}
		case err != nil:
			fmt.Fprintf(out, "%s  status failed (retrying): %v\n", time.Now().Format(time.TimeOnly), err)
		case c.JSON:
			if err := json.NewEncoder(out).Encode(rep); err != nil {
				return err
			}
		default:
			if c.Watch && tty {
				io.WriteString(out, "\x1b[H\x1b[2J") // home + clear: redraw in place
			}
			c.print(out, rep, tty)
		}
		if !c.Watch {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.Interval):
		}
		if !tty && !c.JSON {
			fmt.Fprintln(out)
		}
	}
}

func (c *StatusCmd) collect(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, src campaignSource) (statusReport, error) {
	rep := statusReport{At: time.Now().UTC()}
	if c.RemoveIdle > 0 {
		removed, err := pipeline.RemoveIdleConsumers(ctx, rdb, keys, c.RemoveIdle, pipeline.StageStreams()...)
		if err != nil {
			return rep, err
		}
		for _, r := range removed {
			rep.Removed = append(rep.Removed, fmt.Sprintf("%s %s %s (idle %s)", r.Stream, r.Group, r.Consumer, r.Idle.Round(time.Second)))
		}
	}
	var err error
	if rep.Streams, err = pipeline.Status(ctx, rdb, keys, pipeline.StageStreams()...); err != nil {
		return rep, err
	}
	if rep.DLQ, err = pipeline.NewDLQ(rdb, keys).Len(ctx); err != nil {
		return rep, err
	}
	recv, err := webhook.ReadReceivers(ctx, rdb, keys, rep.Streams)
	if err != nil {
		return rep, err
	}
	rep.Failing, rep.Paused = recv.Failing, recv.Paused
	if rep.RetiredRunning, err = pipeline.RetiredStillRunning(ctx, rdb, keys); err != nil {
		return rep, err
	}
	if c.Campaign != "" {
		p, err := src.Progress(ctx, c.Campaign)
		if errors.Is(err, campaign.ErrNotFound) {
			return rep, unknownID(c.Campaign)
		}
		if err != nil {
			return rep, fmt.Errorf("campaign %s: %w", c.Campaign, err)
		}
		rep.Campaign = &p
	}
	return rep, nil
}

// print writes the report: given an id, that campaign's or message's
// progress first, as it is what was asked (after the streams it was a
// screen down, scrolled off by a watch), then the pipeline it goes through.
func (c *StatusCmd) print(w io.Writer, rep statusReport, tty bool) {
	if rep.Campaign != nil {
		printProgressView(w, *rep.Campaign, tty)
		fmt.Fprintln(w)
	}
	for _, r := range rep.Removed {
		fmt.Fprintln(w, "removed idle consumer", r)
	}
	tw := newTable(w, 0)
	// DELAYED: retries and scheduled campaigns waiting to enter the stream.
	// STATE: from the processes' liveness beats and the batches they say
	// they hold. No consumer idle time: on Redis 7.0 a consumer blocked on
	// a quiet stream ages like a dead one, and a hung handler's entries
	// never age (the runner keeps them claimed); it misled more than it told.
	fmt.Fprintln(tw, "STREAM\tLENGTH\tDELAYED\tGROUP\tLAG\tPENDING\tCONSUMERS\tSTATE\t")
	for _, s := range rep.Streams {
		if len(s.Groups) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t\t\t\t%s\t\n", s.Name, thousands(s.Length), thousands(s.Delayed), noGroup(s.Name))
		}
		for i, gt := range s.Groups {
			name, length, delayed := s.Name, thousands(s.Length), thousands(s.Delayed)
			if i > 0 {
				name, length, delayed = "", "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n", name, length, delayed, gt.Name,
				fmtLag(gt.Lag, gt.LagUnknown > 0), thousands(gt.Pending), gt.Consumers, fmtState(gt))
		}
		if c.Detail {
			for _, p := range s.Partitions {
				for _, gs := range p.Groups {
					fmt.Fprintf(tw, "  p%d\t%s\t%s\t%s\t%s\t%s\t%d\t\t\n", p.Partition, thousands(p.Length), thousands(p.Delayed), gs.Name,
						fmtLag(gs.Lag, gs.Lag < 0), thousands(gs.Pending), len(gs.Consumers))
					for _, cs := range gs.Consumers {
						fmt.Fprintf(tw, "\t\t\t  %s\t\t%s\t\t%s\t\n", cs.Name, thousands(cs.Pending),
							consumerState(s.Groups, gs.Name, cs.Name, p.Key))
					}
				}
			}
		}
	}
	fmt.Fprintf(tw, "dlq\t%s\t\t\t\t\t\t\t\n", thousands(rep.DLQ))
	tw.Flush()
	troubled := troubledGroups(rep.Streams)
	for _, g := range troubled {
		fmt.Fprintf(w, "\n%s %s.", groupLabel(g.Name), g.Plain(pipeline.StartCommand(g.Name)))
	}
	for _, g := range rep.RetiredRunning {
		fmt.Fprintf(w, "\n%s retired (pushpipe results retire), but a process of it still runs, reading nothing (a webhook process alone answers 503 on /readyz). "+
			"Stop it for good (delete its Deployment): restarted, it would create the group anew and POST every event kept.", groupLabel(g))
	}
	failing := webhook.Receivers{Failing: rep.Failing}.FailingNow(rep.Streams)
	for _, f := range failing {
		deliveries := thousands(int64(f.Failed)) + " failed deliveries"
		if f.Failed == 1 {
			deliveries = "1 failed delivery"
		}
		fmt.Fprintf(w, "\n%s receiver failing for %s (%s), last: %s. Its events wait, and go to the DLQ after --max-deliveries (pushpipe dlq list).",
			groupLabel(f.Group), pipeline.Ago(rep.At.Sub(f.Since)), deliveries, f.Err)
	}
	paused := slices.Sorted(maps.Keys(rep.Paused))
	for _, g := range paused {
		// Rounded up: "0s" read as over.
		left := (rep.Paused[g] + time.Second - 1).Truncate(time.Second)
		fmt.Fprintf(w, "\n%s receiver asked for a pause (a Retry-After, or a 429 or 503): no webhook process POSTs to it for another %s. Its events wait.",
			groupLabel(g), pipeline.Ago(left))
	}
	if len(troubled)+len(failing)+len(rep.RetiredRunning)+len(paused) > 0 {
		fmt.Fprintln(w)
	}
}

// groupLabel names a consumer group in the lines under status's table: a
// stage's in capitals, the heading look of those lines, and a webhook
// receiver's own group (--group) as it is spelt, after WEBHOOK group: the
// operator types it (pushpipe webhook --group, results retire), and group
// names are case-sensitive. Upper-cased, "acme" read ACME, a name it is not.
func groupLabel(name string) string {
	if _, ok := pipeline.StageNamed(name); ok {
		return strings.ToUpper(name)
	}
	return "WEBHOOK group " + name
}

func fmtLag(n int64, unknown bool) string {
	if unknown {
		return thousands(max(n, 0)) + "+?" // Redis could not tell for some partition (XINFO GROUPS lag is nil)
	}
	return thousands(n)
}

// fmtState is a group's STATE cell: idle (n), running (n), or what stopped
// it said in capitals, so it stands out among the figures.
func fmtState(g pipeline.GroupTotal) string {
	switch g.State {
	case pipeline.StateStopped:
		last, ok := g.LastSeen()
		switch {
		case !ok:
			return "STOPPED (never seen)"
		case last.Stopped:
			return "STOPPED " + pipeline.Ago(last.Ago) + " ago"
		default:
			return "NOT RUNNING, last seen " + pipeline.Ago(last.Ago) + " ago"
		}
	case pipeline.StateStuck:
		return "STUCK: oldest entry held " + pipeline.Ago(g.StuckFor())
	case "":
		return "-"
	}
	return fmt.Sprintf("%s (%d)", g.State, g.Running)
}

// noGroup is the STATE cell of a stream no group reads yet.
func noGroup(stream string) string {
	if def, ok := pipeline.StageNamed(pipeline.StageOf(stream)); ok && def.Optional {
		return "optional, not run here"
	}
	return "not started"
}

// consumerState is what the liveness beats say of one consumer of group
// on the stream key (--detail): "" when its process is running and not
// stuck on that key, or never reported.
func consumerState(groups []pipeline.GroupTotal, group, consumer, key string) string {
	for _, g := range groups {
		if g.Name != group {
			continue
		}
		if u := g.Unclaimed; u != nil && u.Consumer == consumer && u.Stream == key && g.State == pipeline.StateStuck {
			return "STUCK: entry pending " + pipeline.Ago(u.Idle) + ", unclaimed"
		}
		for _, p := range g.Processes {
			switch {
			case p.Consumer != consumer:
			case !p.Running:
				return "not running, last seen " + pipeline.Ago(p.Ago) + " ago"
			case p.Stuck() && p.Holding.Stream == key:
				return "STUCK: oldest entry held " + pipeline.Ago(p.Holding.Held)
			}
		}
	}
	return ""
}

// troubledGroups are the groups with no running process or a stuck one,
// one each however many streams (lanes) they read, with their lag and
// pending summed.
func troubledGroups(streams []pipeline.StreamStatus) []pipeline.GroupTotal {
	var out []pipeline.GroupTotal
	at := map[string]int{}
	for _, s := range streams {
		for _, g := range s.Groups {
			if g.State != pipeline.StateStopped && g.State != pipeline.StateStuck {
				continue
			}
			if i, ok := at[g.Name]; ok {
				out[i].Lag += g.Lag
				out[i].Pending += g.Pending
				out[i].LagUnknown += g.LagUnknown
				continue
			}
			at[g.Name] = len(out)
			out = append(out, g)
		}
	}
	return out
}
