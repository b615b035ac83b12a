package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// MessagesCmd lists direct messages, as GET /v1/messages does: an operator
// looking for the message a user asks about had only the console.
type MessagesCmd struct {
	List MessagesListCmd `cmd:"" help:"List direct messages, newest first, with their outcome."`
}

// MessagesListCmd is `pushpipe messages list`.
type MessagesListCmd struct {
	Limit  int    `default:"20" help:"At most this many (1–100)."`
	Before string `help:"Messages created before this one: the next page (printed at the end of a page)."`
	JSON   bool   `name:"json" help:"Print {\"messages\":[...],\"next\":ID} as the API does."`
}

// Validate refuses a --limit or --before the list would refuse, before
// anything connects (as campaigns list does).
func (c *MessagesListCmd) Validate() error {
	var errs []error
	if c.Limit < 1 || c.Limit > campaign.MaxListLimit {
		errs = append(errs, fmt.Errorf("--limit: must be a whole number from 1 to %d (default %d), got %d", campaign.MaxListLimit, campaign.DefaultListLimit, c.Limit))
	}
	if c.Before != "" {
		errs = append(errs, validID("--before", c.Before))
	}
	return errors.Join(errs...)
}

// Run prints one page.
func (c *MessagesListCmd) Run(g *Globals) error { return c.run(g, os.Stdout) }

func (c *MessagesListCmd) run(g *Globals, w io.Writer) error {
	var (
		ms   []campaign.MessageSummary
		next string
	)
	err := withCampaigns(g, func(ctx context.Context, tools campaignTools) (err error) {
		ms, next, err = campaign.ListMessages(ctx, tools.rdb, tools.db, g.Keys(), c.Before, c.Limit)
		return err
	})
	if errors.Is(err, campaign.ErrNotFound) {
		return fmt.Errorf("--before %s: no such message; pass the id a page prints after \"more:\"", c.Before)
	}
	if err != nil {
		return err
	}
	return c.print(w, ms, next)
}

// print writes the page: the API's JSON, or a table and the command for
// the next page.
func (c *MessagesListCmd) print(w io.Writer, ms []campaign.MessageSummary, next string) error {
	if c.JSON {
		return json.NewEncoder(w).Encode(campaign.NewMessagePage(ms, next))
	}
	if len(ms) == 0 {
		_, err := fmt.Fprintln(w, "no direct messages")
		return err
	}
	// MUTED and NO DEVICE are the people a message reached no device of:
	// without them, a message to an unknown user read "done 1 0 0 0",
	// nothing sent and nothing failed, with no word of why.
	tw := newTable(w, 0)
	fmt.Fprintln(tw, "ID\tSTATE\tTARGETS\tSENT\tFAILED\tINVALID\tMUTED\tNO DEVICE\tAPP\tCREATED\tTITLE\t")
	for _, m := range ms {
		r := m.Report
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.ID, r.State, thousands(r.Targets), thousands(r.Sent),
			thousands(r.Failed), thousands(r.InvalidTokens), thousands(r.Muted), thousands(r.NoDevices), m.App,
			m.CreatedAt.Local().Format(time.DateTime), clip(oneLine(m.Title), 40))
	}
	tw.Flush()
	if next != "" {
		_, err := fmt.Fprintf(w, "more: pushpipe messages list --before %s\n", next)
		return err
	}
	return nil
}
