package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/alecthomas/kong"
	"github.com/mattn/go-isatty"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// CampaignsRateCmd is `pushpipe campaigns rate ID N`, as PATCH
// /v1/campaigns/{id} {"rate_per_second":N}.
type CampaignsRateCmd struct {
	ID   string `arg:"" help:"The campaign whose rate to change."`
	Rate int    `arg:"" name:"n" help:"Its own cap from now on, in sends per second; 0 removes it."`
	JSON bool   `name:"json" help:"Print the campaign's status as JSON."`

	out io.Writer // os.Stdout, or a test's
}

// rateRange is what campaigns rate's N may be, said alike when kong refuses
// a word (argWords) and when Validate refuses a number.
func rateRange() string {
	return fmt.Sprintf("must be a whole number of sends per second from 0 (no cap of its own) to %d", campaign.MaxRatePerSecond)
}

// rateBeforeID is what usageError says of `campaigns rate 5 c1` (and of
// `-5 c1`, which parseArgs reads as `-- -5 c1`): a number where the id goes
// and a word kong refused as the rate. It said only that the rate N must be
// a number, got "c1", of a line whose mistake is the order. ok is false
// for any other line, among them a word that could not be an id either.
func rateBeforeID(pe *kong.ParseError) (msg string, ok bool) {
	m := kongRateWord.FindStringSubmatch(pe.Unwrap().Error())
	if m == nil || pe.Context == nil || validID("ID", m[1]) != nil {
		return "", false
	}
	var id string
	for _, p := range pe.Context.Path {
		if p.Positional != nil && p.Positional.Name == "id" {
			id = pe.Context.Value(p).String()
		}
	}
	rate, err := strconv.Atoi(id)
	if err != nil {
		return "", false
	}
	said := fmt.Sprintf("got %q as the rate and %s as the campaign's id: the id comes first, pushpipe campaigns rate %s ", m[1], id, m[1])
	if rate < 0 || rate > campaign.MaxRatePerSecond {
		return said + fmt.Sprintf("N, where the rate N %s (got %d)", rateRange(), rate), true
	}
	return said + id, true
}

// kongRateWord is kong's refusal of campaigns rate's N, with the word.
var kongRateWord = regexp.MustCompile(`^<n>: expected a valid \d+ bit int but got "(.*)"$`)

// Validate refuses an id no campaign can have and a rate out of bounds
// before anything is dialled, as CampaignsCancelCmd does.
func (c *CampaignsRateCmd) Validate(kctx *kong.Context) error {
	if !given(kctx, "id") {
		return nil
	}
	if c.ID == "" {
		return errors.New("ID: is empty: give the campaign's id (campaigns list shows them)")
	}
	if err := validID("ID", c.ID); err != nil {
		return err
	}
	if c.Rate < 0 || c.Rate > campaign.MaxRatePerSecond {
		return fmt.Errorf("the rate N: %s, got %d", rateRange(), c.Rate)
	}
	return nil
}

// Run sets the campaign's rate and prints its status.
func (c *CampaignsRateCmd) Run(g *Globals) error {
	var rep campaign.Report
	err := withCampaigns(g, func(ctx context.Context, tools campaignTools) (err error) {
		rep, err = setRate(ctx, tools, g.Keys(), c.ID, c.Rate)
		return err
	})
	switch {
	case errors.Is(err, campaign.ErrFinished):
		return fmt.Errorf("campaign %s is already %s: its rate can no longer change", c.ID, rep.State)
	case errors.Is(err, campaign.ErrIsMessage):
		return fmt.Errorf("%s is a direct message, not a campaign: a message has no rate of its own (pushpipe status %s shows it)", c.ID, c.ID)
	case errors.Is(err, campaign.ErrNotFound):
		return noCampaign(c.ID)
	case err != nil:
		return err
	}
	out := c.out
	if out == nil {
		out = os.Stdout
	}
	if c.JSON {
		return json.NewEncoder(out).Encode(rep)
	}
	printCampaigns(out, []campaign.Report{rep}, time.Now(), out == os.Stdout && isatty.IsTerminal(os.Stdout.Fd()))
	return nil
}

// setRate sets id's rate within refreshTimeout. SetRate records it in
// PostgreSQL before Redis: when Redis does not answer in time, the record
// says whether the rate is set (the stages then follow it once Redis
// answers and a status read writes it there), and either way running it
// again is safe.
func setRate(ctx context.Context, tools campaignTools, keys pipeline.Keys, id string, rate int) (campaign.Report, error) {
	rep, err := within(ctx, refreshTimeout, func(ctx context.Context) (campaign.Report, error) {
		return campaign.SetRate(ctx, tools.rdb, tools.db, keys, id, rate)
	})
	if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
		return rep, err
	}
	after, lerr := campaign.Load(ctx, tools.db, id)
	switch {
	case lerr != nil:
		return rep, fmt.Errorf("%w; whether campaign %s's rate changed is unknown (%w): run pushpipe campaigns rate %s %d again, it is safe to repeat", err, id, lerr, id, rate)
	case after.RatePerSecond == rate:
		return rep, fmt.Errorf("campaign %s's rate is recorded as %d, but Redis, which the stages follow, did not answer: %w; "+
			"run pushpipe campaigns rate %s %d again once Redis answers (pushpipe status says which node is down): it is safe to repeat", id, rate, err, id, rate)
	}
	return rep, fmt.Errorf("campaign %s's rate is not changed (PostgreSQL still has it %d): %w; run pushpipe campaigns rate %s %d again once Redis answers: it is safe to repeat",
		id, after.RatePerSecond, err, id, rate)
}
