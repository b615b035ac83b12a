package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// ChannelsCmd lists channels and counts one's subscribers, as GET
// /v1/channels and GET /v1/channels/{channel} do: which channels a
// campaign may go to, and how many people each reaches, without creating
// one to find out.
type ChannelsCmd struct {
	List ChannelsListCmd `cmd:"" help:"List the channels that have subscribers, by name, with how many each has."`
	Show ChannelsShowCmd `cmd:"" help:"Show how many users subscribe to a channel."`
}

// ChannelsListCmd is `pushpipe channels list`.
type ChannelsListCmd struct {
	Limit int    `default:"100" help:"At most this many (1–1000)."`
	After string `help:"Channels whose names come after this one: the next page (printed at the end of a page)."`
	JSON  bool   `name:"json" help:"Print {\"channels\":[...],\"next\":NAME} as the API does."`
}

// ChannelsShowCmd is `pushpipe channels show NAME`.
type ChannelsShowCmd struct {
	Name string `arg:"" name:"name" help:"The channel."`
	JSON bool   `name:"json" help:"Print {\"channel\",\"subscribers\"} as the API does."`
}

// Validate checks the flags as the API checks its query, by the flags'
// names, every problem at once.
func (c *ChannelsListCmd) Validate() error {
	var errs []error
	if c.Limit < 1 || c.Limit > devices.MaxChannelLimit {
		errs = append(errs, fmt.Errorf("--limit: must be a whole number from 1 to %d (default %d), got %d",
			devices.MaxChannelLimit, devices.DefaultChannelLimit, c.Limit))
	}
	if c.After != "" {
		errs = append(errs, devices.ValidateName("--after", c.After))
	}
	return errors.Join(errs...)
}

// Validate refuses a name no channel can have before anything connects.
func (c *ChannelsShowCmd) Validate() error { return devices.ValidateName("NAME", c.Name) }

// Run prints one page.
func (c *ChannelsListCmd) Run(g *Globals) error { return c.run(g, os.Stdout) }

func (c *ChannelsListCmd) run(g *Globals, w io.Writer) error {
	var (
		page []devices.Channel
		next string
	)
	err := withChannels(g, func(ctx context.Context, db *pgxpool.Pool) (err error) {
		page, next, err = devices.ListChannels(ctx, db, c.After, c.Limit)
		return err
	})
	if err != nil {
		return err
	}
	if c.JSON {
		return json.NewEncoder(w).Encode(struct {
			Channels []devices.Channel `json:"channels"`
			Next     string            `json:"next,omitempty"`
		}{append([]devices.Channel{}, page...), next})
	}
	if len(page) == 0 {
		// A header alone did not say why the table was empty.
		what := "no channels: nobody subscribes to any (pushpipe import subscribers, or PUT /v1/channels/{channel}/subscribers/{user_id})"
		if c.After != "" {
			what = "no channels after " + c.After
		}
		fmt.Fprintln(w, what)
		return nil
	}
	tw := newTable(w, tabwriter.AlignRight)
	fmt.Fprintln(tw, "SUBSCRIBERS\t  CHANNEL")
	for _, ch := range page {
		n := thousands(ch.Subscribers)
		if ch.Capped { // a floor: the list stops counting there (channels show counts all)
			n += "+"
		}
		fmt.Fprintf(tw, "%s\t  %s\n", n, ch.Channel)
	}
	tw.Flush()
	if next != "" {
		more := "pushpipe channels list"
		if c.Limit != devices.DefaultChannelLimit {
			more += " --limit " + strconv.Itoa(c.Limit)
		}
		fmt.Fprintf(w, "more: %s --after %s\n", more, next)
	}
	return nil
}

// Run prints the channel's subscribers.
func (c *ChannelsShowCmd) Run(g *Globals) error { return c.run(g, os.Stdout) }

func (c *ChannelsShowCmd) run(g *Globals, w io.Writer) error {
	var n int64
	err := withChannels(g, func(ctx context.Context, db *pgxpool.Pool) (err error) {
		n, err = devices.ChannelSubscribers(ctx, db, c.Name)
		return err
	})
	if errors.Is(err, devices.ErrNoChannel) {
		return fmt.Errorf("channel %s has no subscribers: nobody subscribed, or all who did left (pushpipe channels list shows those that have some)", c.Name)
	}
	if err != nil {
		return err
	}
	if c.JSON {
		return json.NewEncoder(w).Encode(devices.Channel{Channel: c.Name, Subscribers: n})
	}
	fmt.Fprintf(w, "channel %s: %s subscribers\n", c.Name, thousands(n))
	return nil
}

// withChannels connects to PostgreSQL alone (the subscriptions are all
// there: the channels can be read while Redis is down) and runs fn with a
// minute's deadline: a page counting a channel of millions takes seconds.
func withChannels(g *Globals, fn func(context.Context, *pgxpool.Pool) error) error {
	db, err := g.DB(1)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(g.Context(), time.Minute)
	defer cancel()
	return fn(ctx, db)
}
