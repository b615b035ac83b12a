package console

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

type messagesData struct {
	Messages []campaign.MessageSummary
	Before   string // this page's cursor, for the live rows
	Next     string // the next page's cursor, "" on the last page
}

func (c *Console) messages(r *http.Request) (messagesData, error) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	before := r.URL.Query().Get("before")
	ms, next, err := c.cfg.Campaigns.Messages(ctx, before, listLimit) // a full last page has no next
	return messagesData{Messages: ms, Before: before, Next: next}, err
}

func (c *Console) messagesPage(w http.ResponseWriter, r *http.Request, s session) {
	d, err := c.messages(r)
	p := page{Title: "Direct messages", Nav: "messages", Session: s, Data: d}
	status := http.StatusOK
	if err != nil {
		p.Error, status = c.listFailed(r, "The message list is", "message", "/ui/messages", d.Before, err, true)
	}
	c.render(w, r, status, "messages", p)
}

func (c *Console) messageRows(w http.ResponseWriter, r *http.Request, s session) {
	d, err := c.messages(r)
	p := page{Session: s, Data: d}
	if err != nil {
		p.Error, _ = c.listFailed(r, "The message list is", "message", "/ui/messages", d.Before, err, true)
	}
	c.fragment(w, "messages", "rows", p)
}

// messageData is a message's summary and the stages it waits on that do
// not run (pipeline.NotRunning): a message skips split and resolve, so
// dedupe and deliver.
type messageData struct {
	campaign.MessageSummary
	Waiting []string
}

// message loads the message of the path, or renders why not.
func (c *Console) message(w http.ResponseWriter, r *http.Request, s session) (messageData, bool) {
	m, err := c.loadMessage(r)
	if err != nil {
		c.messageFailed(w, r, s, err)
		return m, false
	}
	return m, true
}

func (c *Console) loadMessage(r *http.Request) (messageData, error) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	m, err := c.cfg.Campaigns.Message(ctx, r.PathValue("id"))
	d := messageData{MessageSummary: m}
	if err == nil && m.Report.State != campaign.MessageDone {
		// Unreadable liveness says nothing: the figures say Redis is away.
		d.Waiting, _ = pipeline.NotRunning(ctx, c.cfg.Redis, c.cfg.Keys, "dedupe", "deliver")
	}
	return d, err
}

// messageFailed answers a message that could not be read with why.
func (c *Console) messageFailed(w http.ResponseWriter, r *http.Request, s session, err error) {
	id := r.PathValue("id")
	status, msg := http.StatusServiceUnavailable, c.unavailable(r, "Message "+id+" is", err, polled(r))
	if errors.Is(err, campaign.ErrNotFound) {
		status, msg = http.StatusNotFound, "There is no direct message "+id+"."
	}
	c.fail(w, r, status, page{Title: "Direct message", Nav: "messages", Session: s, Error: msg})
}

func (c *Console) messagePage(w http.ResponseWriter, r *http.Request, s session) {
	m, err := c.loadMessage(r)
	switch {
	case errors.Is(err, campaign.ErrIsCampaign):
		// A campaign's id opens the campaign's page, as a message's id
		// opens the message's (campaignPage).
		http.Redirect(w, r, "/ui/campaigns/"+url.PathEscape(r.PathValue("id")), http.StatusSeeOther)
	case err != nil:
		c.messageFailed(w, r, s, err)
	default:
		c.render(w, r, http.StatusOK, "message", page{Title: "Message " + m.Report.ID, Nav: "messages", Session: s, Data: m})
	}
}

func (c *Console) messageLive(w http.ResponseWriter, r *http.Request, s session) {
	if m, ok := c.message(w, r, s); ok {
		// Polled on while PostgreSQL is down, so the notice goes once it is back.
		c.live(w, "message", page{Session: s, Data: m}, m.Report.State == campaign.MessageDone && m.Report.RecordUnavailable == "")
	}
}
