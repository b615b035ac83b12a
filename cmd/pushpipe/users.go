package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/pipeline/users"
)

// UsersCmd shows or erases one user, as GET and DELETE /v1/users/{id} do:
// support's "why did user 42 get nothing?" and erasure requests (GDPR,
// PIPA) without an operator token at hand.
type UsersCmd struct {
	Show   UsersShowCmd   `cmd:"" help:"Show a user's devices (every app and state), channels, mutes and last erasure."`
	Delete UsersDeleteCmd `cmd:"" help:"Erase a user: devices (through ingest, even registrations still queued), subscriptions and mutes."`
}

// UsersShowCmd is `pushpipe users show ID`.
type UsersShowCmd struct {
	ID   int64 `arg:"" name:"id" help:"The user id."`
	JSON bool  `name:"json" help:"Print the user as GET /v1/users/{id} does."`
}

// UsersDeleteCmd is `pushpipe users delete ID`.
type UsersDeleteCmd struct {
	ID int64 `arg:"" name:"id" help:"The user id."`
}

func (c *UsersShowCmd) Validate() error   { return validUser(c.ID) }
func (c *UsersDeleteCmd) Validate() error { return validUser(c.ID) }

// validUser refuses an id the API would, before anything connects, naming
// the argument (the API's field name, user_id, is not the CLI's).
func validUser(id int64) error {
	err := devices.ValidateUser(id)
	if fe := (*devices.FieldError)(nil); errors.As(err, &fe) {
		return fmt.Errorf("ID: %s", fe.Problem)
	}
	if err != nil {
		return fmt.Errorf("ID: %w", err)
	}
	return nil
}

// Run prints the user.
func (c *UsersShowCmd) Run(g *Globals) error { return c.run(g, os.Stdout) }

func (c *UsersShowCmd) run(g *Globals, w io.Writer) error {
	// PostgreSQL only: support can look while Redis is down.
	db, err := g.DB(1)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(g.Context(), 30*time.Second)
	defer cancel()
	v, err := users.Show(ctx, db, c.ID)
	if err != nil {
		return err
	}
	if c.JSON {
		return json.NewEncoder(w).Encode(v)
	}
	fmt.Fprintf(w, "user %d\n", v.UserID)
	if len(v.Devices) == 0 {
		fmt.Fprintln(w, "devices: none")
	} else {
		tw := newTable(w, 0)
		fmt.Fprintln(tw, "APP\tPLATFORM\tSTATE\tLOCALE\tEVENT AT\tTOKEN\t")
		for _, d := range v.Devices {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", d.App, or(d.Platform, "-"), d.State, or(d.Locale, "-"),
				d.EventAt.Local().Format(time.DateTime), d.Token)
		}
		tw.Flush()
		if v.DevicesMore {
			fmt.Fprintf(w, "more: only the first %d devices are shown\n", users.MaxListed)
		}
	}
	more := ""
	if v.ChannelsMore {
		more = fmt.Sprintf(" (the first %d)", users.MaxListed)
	}
	fmt.Fprintf(w, "channels%s: %s\n", more, list(v.Channels))
	fmt.Fprintf(w, "muted channels: %s\n", list(v.Preferences.MutedChannels))
	fmt.Fprintf(w, "muted categories: %s\n", list(v.Preferences.MutedCategories))
	erased := "never"
	if v.ErasedAt != nil {
		erased = v.ErasedAt.Local().Format(time.DateTime)
	}
	if _, err := fmt.Fprintf(w, "erased: %s\n", erased); err != nil {
		return err
	}
	// The other half of support's question: what became of what was sent
	// to them (results tail --no-follow), which PostgreSQL does not hold.
	_, err = fmt.Fprintf(w, "what became of each notification sent to them: pushpipe results tail --user %d --campaign ID --no-follow (or --from 0 for all)\n", v.UserID)
	return err
}

// Run erases the user and says what it removed and what it queued.
func (c *UsersDeleteCmd) Run(g *Globals) error { return c.run(g, os.Stdout) }

func (c *UsersDeleteCmd) run(g *Globals, w io.Writer) error {
	var e users.Erasure
	err := withCampaigns(g, func(ctx context.Context, tools campaignTools) (err error) {
		// Stamped as the API stamps device events: the erasure is ordered
		// against registrations by event time.
		var clock devices.Clock
		e, err = users.Erase(ctx, tools.db, tools.rdb, g.Keys(), c.ID, clock.Stamp(1))
		return err
	})
	if err != nil {
		return fmt.Errorf("%w; the erasure may be done in part: run the same command again, which is safe to repeat", err)
	}
	_, err = fmt.Fprintf(w, "user %d erased at %s\n"+
		"devices: %d deletions queued for ingest (registrations accepted before now are dropped)\n"+
		"channels: unsubscribed from %d: %s\n"+
		"mutes: %d removed\n",
		e.UserID, e.ErasedAt.Local().Format(time.RFC3339Nano), e.DevicesQueued, len(e.ChannelsRemoved), list(e.ChannelsRemoved), e.MutesRemoved)
	return err
}

// list is names comma-separated, or "none".
func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// or is s, or def when s is empty.
func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
