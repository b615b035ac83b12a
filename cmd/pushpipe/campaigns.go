package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/mattn/go-isatty"
	"github.com/redis/rueidis"

	"github.com/alecthomas/kong"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// CampaignsCmd lists campaigns, cancels them and changes their rates, as
// GET /v1/campaigns, POST /v1/campaigns/{id}/cancel and PATCH
// /v1/campaigns/{id} do.
type CampaignsCmd struct {
	List   CampaignsListCmd   `cmd:"" help:"List campaigns, newest first, with their progress."`
	Cancel CampaignsCancelCmd `cmd:"" help:"Cancel a campaign: no provider request of it starts a second after this returns."`
	Rate   CampaignsRateCmd   `cmd:"" help:"Change a campaign's own cap while it goes out (N sends per second, 0 for none): every deliver paces it so within a second."`
}

// CampaignsListCmd is `pushpipe campaigns list`.
type CampaignsListCmd struct {
	State  string `help:"Only campaigns in this state (scheduled, splitting, running, done, canceled, failed)."`
	Limit  int    `default:"20" help:"At most this many (1–100)."`
	Before string `help:"Campaigns created before this one: the next page (printed at the end of a page)."`
	JSON   bool   `name:"json" help:"Print {\"campaigns\":[...],\"next\":ID} as the API does."`

	out io.Writer // os.Stdout, or a test's
}

// Validate checks the flags as the API checks its query, by their names:
// "limit: must be a number from 1 to 100" named the API's parameter, and
// --limit 0, which the API refuses, listed 20.
func (c *CampaignsListCmd) Validate() error {
	var errs []error
	if c.Limit < 1 || c.Limit > campaign.MaxListLimit {
		errs = append(errs, fmt.Errorf("--limit: must be a whole number from 1 to %d (default %d), got %d", campaign.MaxListLimit, campaign.DefaultListLimit, c.Limit))
	}
	if c.State != "" && !slices.Contains(campaign.States, c.State) {
		errs = append(errs, fmt.Errorf("--state: must be one of %s, got %q", strings.Join(campaign.States, ", "), c.State))
	}
	if c.Before != "" {
		errs = append(errs, validID("--before", c.Before))
	}
	return errors.Join(errs...) // every problem at once, as send says them
}

// Run prints one page.
func (c *CampaignsListCmd) Run(g *Globals) error {
	q := campaign.ListQuery{State: c.State, Limit: c.Limit, Before: c.Before}
	if err := q.Validate(); err != nil {
		return err
	}
	var (
		reps []campaign.Report
		next string
	)
	err := withCampaigns(g, func(ctx context.Context, tools campaignTools) (err error) {
		reps, next, err = listPage(ctx, tools, g.Keys(), q)
		return err
	})
	if errors.Is(err, campaign.ErrNotFound) {
		// As the API says it: `campaign "x": campaign not found` did not
		// say that the id was --before's, nor where a good one is printed.
		return fmt.Errorf("--before %s: no such campaign; pass the id a page prints after \"more:\"", c.Before)
	}
	if err != nil {
		return err
	}
	out := c.out
	if out == nil {
		out = os.Stdout
	}
	if c.JSON {
		return json.NewEncoder(out).Encode(struct {
			Campaigns []campaign.Report `json:"campaigns"`
			Next      string            `json:"next,omitempty"`
		}{reps, next})
	}
	if len(reps) == 0 {
		// A header alone did not say whether the filter or the page was
		// empty.
		what := "no campaigns"
		if c.State != "" {
			what = "no " + c.State + " campaigns"
		}
		if c.Before != "" {
			what += " created before " + c.Before
		}
		fmt.Fprintln(out, what)
		return nil
	}
	printCampaigns(out, reps, time.Now(), isatty.IsTerminal(os.Stdout.Fd()))
	if next != "" {
		// The next page of the same list: without its --state and --limit,
		// the command printed listed every state, 20 at a time.
		more := "pushpipe campaigns list"
		if c.State != "" {
			more += " --state " + c.State
		}
		if c.Limit != campaign.DefaultListLimit {
			more += " --limit " + strconv.Itoa(c.Limit)
		}
		fmt.Fprintf(out, "more: %s --before %s\n", more, next)
	}
	return nil
}

// listPage reads one page within refreshTimeout: with a Redis Cluster
// master down it waited out withCampaigns' 30 s, then said only "context
// deadline exceeded".
func listPage(ctx context.Context, tools campaignTools, keys pipeline.Keys, q campaign.ListQuery) ([]campaign.Report, string, error) {
	type page struct {
		reps []campaign.Report
		next string
	}
	p, err := within(ctx, refreshTimeout, func(ctx context.Context) (page, error) {
		reps, next, err := campaign.List(ctx, tools.rdb, tools.db, keys, q)
		return page{reps, next}, err
	})
	return p.reps, p.next, err
}

// CampaignsCancelCmd is `pushpipe campaigns cancel ID`.
type CampaignsCancelCmd struct {
	ID   string `arg:"" help:"The campaign to cancel."`
	JSON bool   `name:"json" help:"Print the campaign's status as JSON."`
}

// Validate refuses an id no campaign can have before anything is dialled:
// with Redis down, the malformed id was not what was said. (A missing one
// kong says after the validators.) An empty one given (an empty string) went on to
// dial, and asked Redis and PostgreSQL for a campaign of no id.
func (c *CampaignsCancelCmd) Validate(kctx *kong.Context) error {
	switch {
	case !given(kctx, "id"):
		return nil
	case c.ID == "":
		return errors.New("ID: is empty: give the campaign's id (campaigns list shows them)")
	}
	return validID("ID", c.ID)
}

// validID is campaign.ValidateID's verdict on id, said of the argument or
// flag name that gave it ("id: ..." is the API's field).
func validID(name, id string) error {
	if err := campaign.ValidateID(id); err != nil {
		return fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "id: "))
	}
	return nil
}

// Run cancels the campaign and prints its status.
func (c *CampaignsCancelCmd) Run(g *Globals) error {
	var (
		rep     campaign.Report
		already bool // canceled before this command
	)
	err := withCampaigns(g, func(ctx context.Context, tools campaignTools) (err error) {
		rep, already, err = cancelCampaign(ctx, tools, g.Keys(), c.ID)
		return err
	})
	if errors.Is(err, campaign.ErrFinished) {
		return fmt.Errorf("campaign %s is already %s: there is nothing left to cancel", c.ID, rep.State)
	}
	if errors.Is(err, campaign.ErrIsMessage) {
		// As the API says it; `campaign "x": campaign not found: a direct
		// message` left the operator to guess that messages are not canceled.
		return fmt.Errorf("%s is a direct message, not a campaign: a message cannot be canceled (pushpipe status %s shows it)", c.ID, c.ID)
	}
	if errors.Is(err, campaign.ErrNotFound) {
		// `campaign "x": campaign not found` said it twice and not
		// where ids are.
		return noCampaign(c.ID)
	}
	if err != nil {
		return err
	}
	if already {
		when := ""
		if rep.FinishedAt != nil {
			when = " at " + rep.FinishedAt.Local().Format(time.DateTime)
		}
		fmt.Fprintf(os.Stderr, "campaign %s was already canceled%s: nothing more to stop\n", c.ID, when)
	}
	if c.JSON {
		return json.NewEncoder(os.Stdout).Encode(rep)
	}
	printCampaigns(os.Stdout, []campaign.Report{rep}, time.Now(), isatty.IsTerminal(os.Stdout.Fd()))
	return nil
}

// noCampaign is the error of a command given a campaign id that names
// none, as the API's 404 says it: what to check, and where ids are.
func noCampaign(id string) error {
	return fmt.Errorf("no campaign %s: check the id (pushpipe campaigns list shows them, newest first)", id)
}

// cancelCampaign cancels id within refreshTimeout, and says whether it was
// canceled before. With a Redis Cluster master down, Cancel waited out
// withCampaigns' 30 s and said "context deadline exceeded", leaving the
// operator to guess whether the campaign was stopped. When Redis does not
// answer in time, PostgreSQL says where the cancel got to: Cancel sets the
// stages' flag in Redis before it records the state, so a campaign
// PostgreSQL has canceled is stopping, and one it has not may or may not
// have its flag. Either way a second cancel is safe: it sets the flag and
// the state again, or answers a canceled campaign's report.
func cancelCampaign(ctx context.Context, tools campaignTools, keys pipeline.Keys, id string) (campaign.Report, bool, error) {
	// Whether it was canceled before is PostgreSQL's alone: reading the
	// counters too cost a second wait on a dead master.
	before, err := campaign.Load(ctx, tools.db, id)
	if err != nil && !errors.Is(err, campaign.ErrNotFound) {
		return campaign.Report{ID: id}, false, err
	}
	already := err == nil && before.State == campaign.StateCanceled
	rep, err := within(ctx, refreshTimeout, func(ctx context.Context) (campaign.Report, error) {
		return campaign.Cancel(ctx, tools.rdb, tools.db, keys, id)
	})
	if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
		return rep, already, err
	}
	after, lerr := campaign.Load(ctx, tools.db, id)
	switch {
	case lerr != nil:
		return rep, already, fmt.Errorf("%w; whether campaign %s is canceled is unknown (%w): run pushpipe campaigns cancel %s again, it is safe to repeat", err, id, lerr, id)
	case after.State == campaign.StateCanceled:
		return rep, already, fmt.Errorf("campaign %s is canceled (PostgreSQL recorded it, after the stages' flag in Redis was set), but its progress could not be read: %w; "+
			"pushpipe status %s shows it once Redis answers, and running the cancel again is safe", id, err, id)
	}
	return rep, already, fmt.Errorf("campaign %s is not canceled (PostgreSQL still has it %s; the stages' flag in Redis may be set, then they are stopping it): %w; "+
		"run pushpipe campaigns cancel %s again once Redis answers (pushpipe status says which node is down): it is safe to repeat", id, after.State, err, id)
}

// printCampaigns is the campaigns table: a progress bar of the people done
// of the targets, the counts (people targeted, devices sent and failed),
// the rate and, for a running campaign, when
// it should finish.
func printCampaigns(w io.Writer, reps []campaign.Report, now time.Time, tty bool) {
	tw := newTable(w, 0)
	// Targets are people and sent/failed devices, as status says them
	// ("100 / 150 people", "sent 180"): under TARGETS and SENT, 969 sent
	// of 807 targets read as a count gone wrong.
	fmt.Fprintln(tw, "ID\tSTATE\tPROGRESS\tPEOPLE\tDEVICES SENT\tFAILED\tRATE\tCREATED\tFINISH\t")
	for _, r := range reps {
		frac := 0.0
		if reached, of := r.Reached(); of > 0 {
			frac = min(float64(reached)/float64(of), 1)
		}
		if r.State == campaign.StateDone {
			frac = 1
		}
		bar := fmt.Sprintf("%s %5.1f%%", progressBar(frac, 20, tty), 100*frac)
		if r.State == campaign.StateCanceled && r.SendAt != nil && r.StartedAt == nil {
			// As the console says it: "0.0%" alone hid which
			// scheduled send was stopped.
			bar = "was to start " + r.SendAt.Local().Format(time.DateTime)
		}
		if r.State == campaign.StateScheduled && r.SendAt != nil {
			bar = "starts " + r.SendAt.Local().Format(time.DateTime)
			if late(*r.SendAt, now) {
				bar = "due " + r.SendAt.Local().Format(time.DateTime) + ", not started"
			}
		}
		rate := "-"
		if r.SendRate > 0 {
			rate = thousands(int64(r.SendRate)) + "/s"
		}
		if r.RatePerSecond > 0 {
			rate += " (cap " + thousands(int64(r.RatePerSecond)) + ")"
		}
		finish := "-"
		switch {
		case r.FinishedAt != nil:
			finish = r.FinishedAt.Local().Format(time.DateTime)
		case r.StalledSinceMs > 0:
			// As status says of the stages: a campaign that does not
			// move promises no finish ("~3m20s" stood for as long as
			// deliver was down).
			finish = "stalled since " + time.UnixMilli(r.StalledSinceMs).Local().Format(time.TimeOnly)
		case r.QueuedSinceMs > 0:
			// No finish either, but nothing to look for: the pipeline
			// works on other campaigns ahead of it.
			finish = "queued since " + time.UnixMilli(r.QueuedSinceMs).Local().Format(time.TimeOnly)
		case r.ExpectedFinishMs > 0:
			finish = "~" + time.UnixMilli(r.ExpectedFinishMs).Sub(now).Round(time.Second).String()
			if r.PastExpiry() { // the rest fail as expired: said where the finish is read
				finish += ", expires in " + max(r.ExpiresAt.Sub(now), 0).Round(time.Second).String()
			}
		}
		targets := thousands(r.Targets)
		switch {
		case r.State == campaign.StateSplitting:
			targets += " so far" // split still cuts it: the column grows (soFar)
		case r.SplitStopped:
			// The people of the ranges cut before the cancel: read bare,
			// it passed for the campaign's audience.
			targets = "≥ " + targets + " (split stopped at cancel)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.ID, r.State,
			bar, targets, thousands(r.Sent), thousands(r.Failed), rate,
			r.CreatedAt.Local().Format(time.DateTime), finish)
	}
	tw.Flush()
}

// startLate is how long past its send_at a campaign still scheduled is
// said to be late: split releases it within a second of it (DESIGN), so
// one still waiting after that waits for a split that does not run.
const startLate = 5 * time.Second

// late reports whether a campaign due at sendAt and still scheduled at now
// is late: "starts 06:59:26 (in 0s)" stood for an hour under a stopped
// split, as if it were about to start.
func late(sendAt, now time.Time) bool { return now.Sub(sendAt) > startLate }

// campaignTools are the connections the campaign commands use.
type campaignTools struct {
	rdb rueidis.Client
	db  *pgxpool.Pool
}

// withCampaigns connects to Redis and PostgreSQL and runs fn with a 30 s
// deadline.
func withCampaigns(g *Globals, fn func(context.Context, campaignTools) error) error {
	rdb, err := g.RedisNow()
	if err != nil {
		return err
	}
	defer rdb.Close()
	db, err := g.DB(2)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(g.Context(), 30*time.Second)
	defer cancel()
	return fn(ctx, campaignTools{rdb: rdb, db: db})
}
