package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/mattn/go-isatty"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/bench"
	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// StatusCmd shows every stage stream (length, lag and pending per group,
// consumers, and whether the group's processes run, idle, are stuck or
// stopped), the dead letters and, given a campaign id, its progress.
type StatusCmd struct {
	Campaign   string        `arg:"" optional:"" name:"id" help:"Also show this campaign's or direct message's progress."`
	JSON       bool          `name:"json" help:"Print JSON (one object per refresh with --watch) for scripts. With --watch, a refresh that failed is a line of its own with the keys at and error, and the next one retries."`
	Watch      bool          `help:"Refresh until Ctrl-C."`
	Interval   time.Duration `default:"1s" help:"Refresh interval with --watch."`
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
	return c.refresh(ctx, rdb, keys, src, out, tty)
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
	if rep.Failing, err = webhook.Failures(ctx, rdb, keys); err != nil {
		return rep, err
	}
	if rep.RetiredRunning, err = pipeline.RetiredStillRunning(ctx, rdb, keys); err != nil {
		return rep, err
	}
	if c.Campaign != "" {
		p, err := src.Progress(ctx, c.Campaign)
		if errors.Is(err, campaign.ErrNotFound) {
			// Said once, with where to look: the wrapped form read
			// `campaign x: campaign "x": campaign not found`.
			return rep, fmt.Errorf("no campaign or direct message %s: check the id (pushpipe campaigns list shows the campaigns)", c.Campaign)
		}
		if err != nil {
			return rep, fmt.Errorf("campaign %s: %w", c.Campaign, err)
		}
		rep.Campaign = &p
	}
	return rep, nil
}

func (c *StatusCmd) print(w io.Writer, rep statusReport, tty bool) {
	for _, r := range rep.Removed {
		fmt.Fprintln(w, "removed idle consumer", r)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
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
		fmt.Fprintf(w, "\n%s %s.", strings.ToUpper(g.Name), g.Plain(pipeline.StartCommand(g.Name)))
	}
	for _, g := range rep.RetiredRunning {
		fmt.Fprintf(w, "\n%s retired (pushpipe results retire), but a process of it still runs, reading nothing (a webhook process alone answers 503 on /readyz). "+
			"Stop it for good (delete its Deployment): restarted, it would create the group anew and POST every event kept.", strings.ToUpper(g))
	}
	failing := failingReceivers(rep)
	for _, f := range failing {
		deliveries := thousands(int64(f.Failed)) + " failed deliveries"
		if f.Failed == 1 {
			deliveries = "1 failed delivery"
		}
		fmt.Fprintf(w, "\n%s receiver failing for %s (%s), last: %s. Its events wait, and go to the DLQ after --max-deliveries (pushpipe dlq list).",
			strings.ToUpper(f.Group), pipeline.Ago(rep.At.Sub(f.Since)), deliveries, f.Err)
	}
	if len(troubled)+len(failing)+len(rep.RetiredRunning) > 0 {
		fmt.Fprintln(w)
	}
	if rep.Campaign != nil {
		fmt.Fprintln(w)
		printProgressView(w, *rep.Campaign, tty)
	}
}

// progressView is DESIGN's progress object, as GET /v1/campaigns/{id}
// returns it. targets, muted, duplicates and no devices count people; sent,
// failed and invalid tokens count devices.
type progressView struct {
	ID    string `json:"id"`
	Kind  string `json:"kind,omitempty"` // "message" for a direct message's
	State string `json:"state"`
	// RawTokens is a message to raw tokens: its targets are tokens, not
	// people ("2 / 2 people" for two tokens of nobody known).
	RawTokens bool `json:"raw_tokens,omitempty"`
	campaign.Counts
	Error string `json:"error,omitempty"` // why the campaign failed as a whole
	// Done counts targets that reached a terminal state: with the
	// audience, the bar's figures (campaign.Reached).
	Done     int64  `json:"users_done"`
	Audience int64  `json:"audience,omitempty"` // campaign.Report.Audience
	Note     string `json:"note,omitempty"`     // what status could not read
	// SendAt is when a scheduled campaign starts, or a campaign canceled
	// before its start was to: "scheduled, 0 / 0 people" alone did not say
	// when, nor "canceled, 0 / 0 people" which send was stopped.
	SendAt *time.Time `json:"send_at,omitempty"`
	// PastExpiry is set when, at its rate, the campaign would still be
	// sending when it expires (campaign.Report.PastExpiry): when it
	// expires, and when it would finish.
	PastExpiry *pastExpiry `json:"past_expiry,omitempty"`
	// RatePerSecond is the campaign's own cap, and ExpectedFinishMs when,
	// at its rate so far, it should finish (campaign.Report's): a capped
	// campaign's status showed neither, so its pace read as a slow
	// pipeline, and `campaigns list` alone said when it would end.
	RatePerSecond    int   `json:"rate_per_second,omitempty"`
	ExpectedFinishMs int64 `json:"expected_finish_ms,omitempty"`
	// StalledSinceMs is when a campaign that stopped moving last moved
	// (campaign.Report's): it has no expected finish then.
	StalledSinceMs int64 `json:"stalled_since_ms,omitempty"`
	// QueuedSinceMs is the same of a campaign that waits its turn behind
	// other work while the pipeline moves it (campaign.Report's).
	QueuedSinceMs int64 `json:"queued_since_ms,omitempty"`
	// Reasons is why its failed and invalid devices ended so: reason →
	// devices (withReasons).
	Reasons map[string]int64 `json:"failure_reasons,omitempty"`
}

// pastExpiry is a campaign's expiry and the later finish its rate gives.
type pastExpiry struct {
	ExpiresAt time.Time `json:"expires_at"`
	FinishAt  time.Time `json:"expected_finish"`
}

// fraction is the bar's value, people reached of those expected
// (campaign.Reached), with both as printed: "~" before a count of the
// audience, the targets of a campaign still being cut.
func (p progressView) fraction() (float64, string, string) {
	reached, expected := campaign.Reached(p.State, p.Counts, p.Done, p.Audience)
	if expected <= 0 {
		return 0, thousands(reached), "0"
	}
	of := thousands(expected)
	if expected != p.Targets {
		of = "~" + of
	}
	return min(float64(reached)/float64(expected), 1), thousands(reached), of
}

// unit is what the targets count.
func (p progressView) unit() string {
	if p.RawTokens {
		return "tokens"
	}
	return "people"
}

// printProgressView draws the bar (people done of targets) and the counters.
func printProgressView(w io.Writer, p progressView, tty bool) {
	frac, reached, of := p.fraction()
	fmt.Fprintf(w, "%s %s  %s\n", kindOf(p), p.ID, p.State)
	if p.Error != "" {
		fmt.Fprintf(w, "  FAILED: %s\n", p.Error)
	}
	if p.Note != "" {
		fmt.Fprintf(w, "  (%s)\n", p.Note)
	}
	if p.SendAt != nil {
		if now := time.Now(); p.State == campaign.StateCanceled {
			fmt.Fprintf(w, "  canceled before its start, %s\n", p.SendAt.Local().Format(time.DateTime))
		} else if late(*p.SendAt, now) {
			fmt.Fprintf(w, "  was due %s (%s ago) and has not started: split releases scheduled campaigns; check that it runs\n",
				p.SendAt.Local().Format(time.DateTime), now.Sub(*p.SendAt).Round(time.Second))
		} else {
			fmt.Fprintf(w, "  starts %s (in %s)\n", p.SendAt.Local().Format(time.DateTime), max(p.SendAt.Sub(now), 0).Round(time.Second))
		}
	}
	if x := p.PastExpiry; x != nil {
		fmt.Fprintf(w, "  EXPIRES %s, before it is done at this rate (%s): devices not sent by then fail as expired. "+
			"Cancel it and send it again with a higher --rate-per-second or a longer --ttl to reach them all\n",
			x.ExpiresAt.Local().Format(time.DateTime), x.FinishAt.Local().Format(time.DateTime))
	}
	fmt.Fprintf(w, "  %s %5.1f%%  %s / %s %s\n", progressBar(frac, 40, tty), 100*frac, reached, of, p.unit())
	none := "" // people done with nothing sent: why sent falls short of them
	if p.NoDevices > 0 {
		none = "  no devices " + thousands(p.NoDevices)
	}
	// A message's list is made each user once before dedupe (Normalize), so
	// its "duplicates suppressed 0" read as if a user listed twice had been
	// sent twice; GET /v1/messages/{id} has no such count either.
	dups := ""
	if p.Kind != "message" {
		dups = "  duplicates suppressed " + thousands(p.DuplicatesSuppressed)
	}
	// Mutes are a user's; a message to raw tokens has no user to mute it.
	muted := ""
	if !p.RawTokens {
		muted = "  muted " + thousands(p.Muted)
	}
	fmt.Fprintf(w, "  sent %s  failed %s  invalid tokens %s%s%s%s\n",
		thousands(p.Sent), thousands(p.Failed), thousands(p.InvalidTokens), muted, dups, none)
	io.WriteString(w, reasonsLine(p.Reasons))
	if p.FirstSendMs > 0 {
		first, last := time.UnixMilli(p.FirstSendMs), time.UnixMilli(p.LastSendMs)
		rate := ""
		// Under a second, a rate is the noise of a few sends: a chat
		// message's 3 devices sent within 2ms read "1,500 sends/s".
		if d := last.Sub(first); d >= time.Second {
			rate = fmt.Sprintf("  %s sends/s", thousands(int64(float64(p.Sent)/d.Seconds())))
		}
		if p.RatePerSecond > 0 {
			rate += fmt.Sprintf(" (cap %s)", thousands(int64(p.RatePerSecond)))
		}
		fmt.Fprintf(w, "  first send %s  last send %s (%s)%s\n", first.Format("15:04:05.000"),
			last.Format("15:04:05.000"), last.Sub(first).Round(time.Millisecond), rate)
	} else if p.RatePerSecond > 0 {
		fmt.Fprintf(w, "  capped at %s sends/s\n", thousands(int64(p.RatePerSecond)))
	}
	if p.StalledSinceMs > 0 && !campaign.Final(p.State) {
		at := time.UnixMilli(p.StalledSinceMs)
		fmt.Fprintf(w, "  stalled: no progress since %s (%s ago), no finish to expect\n", at.Local().Format(time.DateTime), pipeline.Ago(time.Since(at)))
	}
	if p.QueuedSinceMs > 0 && !campaign.Final(p.State) {
		at := time.UnixMilli(p.QueuedSinceMs)
		fmt.Fprintf(w, "  queued: no progress since %s (%s ago) while the pipeline works on other campaigns ahead of it (sending them, or cutting them first); nothing is down, and no finish to expect until its turn\n",
			at.Local().Format(time.DateTime), pipeline.Ago(time.Since(at)))
	}
	if p.ExpectedFinishMs > 0 && p.PastExpiry == nil && !campaign.Final(p.State) {
		at := time.UnixMilli(p.ExpectedFinishMs)
		fmt.Fprintf(w, "  expected to finish %s (in ~%s)\n", at.Local().Format(time.DateTime), max(time.Until(at), 0).Round(time.Second))
	}
}

// bar is a fixed-width progress bar: block characters on a terminal,
// ASCII otherwise so logs and pipes stay readable.
func progressBar(frac float64, width int, tty bool) string {
	full, empty := "#", "."
	if tty {
		full, empty = "█", "░"
	}
	n := int(frac*float64(width) + 0.5)
	return "[" + strings.Repeat(full, n) + strings.Repeat(empty, width-n) + "]"
}

// thousands formats with thousands separators, as the benchmark's report.
func thousands(n int64) string { return bench.Thousands(n) }

// plural is n things, n in thousands: "1 line", "2,000 lines".
func plural(n int64, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return thousands(n) + " " + thing + "s"
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

// failingReceivers are the recorded failures of the results groups a
// process still runs, by group name: a stopped group's record is stale (its
// process died failing), and its row says it stopped.
func failingReceivers(rep statusReport) []webhook.Failure {
	var out []webhook.Failure
	for _, s := range rep.Streams {
		if s.Name != pipeline.StreamResults {
			continue
		}
		for _, g := range s.Groups {
			if f, ok := rep.Failing[g.Name]; ok && g.State != pipeline.StateStopped {
				out = append(out, f)
			}
		}
	}
	return out
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

// campaignSource is the campaign's progress as campaign defines it
// (state, counters), plus the people done that the bar shows, summed from the
// counters. Without a database, or while it is down, status still shows the
// counters: an operator needs status most during an outage.
type campaignSource struct {
	rdb    rueidis.Client
	keys   pipeline.Keys
	db     *pgxpool.Pool // nil: no database configured, or dbDown
	dbDown error         // why the configured database could not be opened
}

func (s campaignSource) Progress(ctx context.Context, id string) (progressView, error) {
	v, err := s.progress(ctx, id)
	if err != nil {
		return v, err
	}
	return s.withReasons(ctx, v), nil
}

func (s campaignSource) progress(ctx context.Context, id string) (progressView, error) {
	counters := counterProgress{rdb: s.rdb, keys: s.keys}
	if s.dbDown != nil {
		// Started while PostgreSQL is down: what Redis holds, state
		// included, as the API answers then (campaign.RedisProgress).
		rep, err := campaign.RedisProgress(ctx, s.rdb, s.keys, id, s.pgDown())
		return s.report(ctx, id, rep, err)
	}
	if s.db == nil {
		v, known, err := counters.Progress(ctx, id)
		if err == nil && !known {
			// Zero counters would read as a campaign that reached nobody;
			// without PostgreSQL, Redis is the only word on the id.
			return v, fmt.Errorf("Redis holds no campaign or direct message of this id: check it (Redis keeps one for %d days after its TTL; "+
				"set PUSHPIPE_DATABASE_URL to read an older one's state)", int(campaign.KeepCounters.Hours()/24))
		}
		v.Note = "no PUSHPIPE_DATABASE_URL: counters only, state unknown"
		return v, err
	}
	rep, err := campaign.Progress(ctx, s.rdb, s.db, s.keys, id)
	return s.report(ctx, id, rep, err)
}

// pgDown is the error of a database that could not be opened, marked as
// PostgreSQL's.
func (s campaignSource) pgDown() error { return fmt.Errorf("%w: %w", campaign.ErrPostgres, s.dbDown) }

// report is the view of a campaign's report, or of the error it came with:
// a report of Redis alone (PostgreSQL down) is shown with its notice.
func (s campaignSource) report(ctx context.Context, id string, rep campaign.Report, err error) (progressView, error) {
	switch {
	case errors.Is(err, campaign.ErrIsMessage):
		return s.message(ctx, id)
	case errors.Is(err, campaign.ErrNotFound):
		return progressView{ID: id}, err
	case errors.Is(err, campaign.ErrNotLive):
		return progressView{ID: id}, fmt.Errorf("Redis holds no campaign or direct message of this id, and PostgreSQL, which keeps older ones, is unavailable: %w", err)
	case err != nil && !errors.Is(err, campaign.ErrPartial):
		v, _, cerr := counterProgress{rdb: s.rdb, keys: s.keys}.Progress(ctx, id)
		v.Note = "campaign state unavailable (" + err.Error() + "): counters only"
		return v, cerr
	}
	v := progressView{ID: id, State: rep.State, Counts: rep.Counts, Error: rep.Error, Done: rep.Done, Audience: rep.Audience, Note: rep.RecordUnavailable}
	if rep.PastExpiry() {
		v.PastExpiry = &pastExpiry{ExpiresAt: rep.ExpiresAt, FinishAt: time.UnixMilli(rep.ExpectedFinishMs)}
	}
	v.RatePerSecond = rep.RatePerSecond
	if !campaign.Final(rep.State) {
		v.ExpectedFinishMs, v.StalledSinceMs, v.QueuedSinceMs = rep.ExpectedFinishMs, rep.StalledSinceMs, rep.QueuedSinceMs
	}
	if rep.State == campaign.StateScheduled || rep.State == campaign.StateCanceled && rep.StartedAt == nil {
		v.SendAt = rep.SendAt
	}
	return v, nil
}

// message is a direct message's progress (campaign.MessageProgress).
func (s campaignSource) message(ctx context.Context, id string) (progressView, error) {
	var m campaign.MessageReport
	var err error
	if s.dbDown != nil {
		m, err = campaign.RedisMessageProgress(ctx, s.rdb, s.keys, id, s.pgDown())
	} else {
		m, err = campaign.MessageProgress(ctx, s.rdb, s.db, s.keys, id)
	}
	if err != nil && !errors.Is(err, campaign.ErrPartial) {
		return progressView{ID: id, Kind: "message"}, err
	}
	v := progressView{ID: id, Kind: "message", State: m.State, Done: m.UsersDone, RawTokens: m.RawTokens, Note: m.RecordUnavailable}
	v.Targets, v.Muted, v.Sent, v.Failed, v.InvalidTokens, v.NoDevices = m.Targets, m.Muted, m.Sent, m.Failed, m.InvalidTokens, m.NoDevices
	v.FirstSendMs, v.LastSendMs = m.FirstSendMs, m.LastSendMs
	return v, nil
}

// counterProgress is the counters alone (campaign.Counters): the state
// needs PostgreSQL, so it is left unknown.
type counterProgress struct {
	rdb  rueidis.Client
	keys pipeline.Keys
}

// Progress also says whether Redis knows the id at all (campaign.Live's
// Known).
func (s counterProgress) Progress(ctx context.Context, id string) (progressView, bool, error) {
	l, err := campaign.Counters(ctx, s.rdb, s.keys, id)
	if err != nil {
		return progressView{ID: id, State: "unknown"}, false, err
	}
	v := progressView{ID: id, State: "unknown", Counts: l.Counts, Error: l.FailReason, Done: l.UsersDone}
	if l.Message {
		// Without PostgreSQL a message read as "campaign m1" with a
		// campaign's counters; its hash in Redis says what it is.
		v.Kind = "message"
	}
	return v, l.Known, nil
}
