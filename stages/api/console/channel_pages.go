package console

import (
	"context"
	"errors"
	"net/http"

	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// channelsData is a page of channels: those with a subscriber, by name.
type channelsData struct {
	Channels []devices.Channel
	After    string // this page's cursor ("" for the first)
	Next     string // the next page's cursor, "" on the last page
	// Unread: the channels could not be read (the form's suggestions
	// are then none, which says nothing of any channel).
	Unread bool
}

// State is what the form's suggestions are, for console.js to say of a
// chosen channel not among them: "all" (it has no subscriber), "first" (it
// may be past them) or "unread".
func (d channelsData) State() string {
	switch {
	case d.Unread:
		return "unread"
	case d.Next != "":
		return "first"
	}
	return "all"
}

// channels reads the page after ?after= (up to limit channels). It does
// not poll: counts move slowly, and counting a channel of millions once a
// second for every open page would be the database's whole afternoon.
func (c *Console) channels(r *http.Request, limit int) (channelsData, error) {
	after := r.URL.Query().Get("after")
	d := channelsData{After: after}
	if after != "" {
		if err := devices.ValidateName("after", after); err != nil {
			return d, err
		}
	}
	if c.cfg.DB == nil {
		return d, errors.New("PostgreSQL is not configured (pushpipe api --database-url)")
	}
	ctx, cancel := context.WithTimeout(r.Context(), devices.CountTimeout)
	defer cancel()
	var err error
	d.Channels, d.Next, err = devices.ListChannels(ctx, c.cfg.DB, after, limit)
	return d, err
}

// channelsPage is the Channels page: which channels a campaign may go to,
// and how many people each reaches (subscriptions; mutes and users without
// devices are found as it goes).
func (c *Console) channelsPage(w http.ResponseWriter, r *http.Request, s session) {
	d, err := c.channels(r, devices.DefaultChannelLimit)
	p := page{Title: "Channels", Nav: "channels", Session: s, Data: d}
	status := http.StatusOK
	var fe *devices.FieldError
	switch {
	case errors.As(err, &fe):
		p.Error, status = "This page lists the channels after "+devices.Echo(d.After)+", which no channel can be named ("+fe.Problem+"): the first are at /ui/channels.", http.StatusBadRequest
	case err != nil:
		p.Error = c.unavailable(r, "The channel list is", err, false)
	}
	c.render(w, r, status, "channels", p)
}

// channelOptions are the new campaign form's suggestions (its datalist,
// whole): the first MaxChannelLimit channels with their subscribers. The
// form asks for them once it is shown, so a slow count never holds the
// form back; if they cannot be read, there are no suggestions, and nothing
// else changes.
func (c *Console) channelOptions(w http.ResponseWriter, r *http.Request, s session) {
	d, err := c.channels(r, devices.MaxChannelLimit)
	if err != nil {
		c.failed(r, err, "console: channel suggestions unavailable")
		d = channelsData{Unread: true}
	}
	c.fragment(w, "channels", "options", page{Session: s, Data: d})
}
