package console

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/devices"
)

type messagesData struct {
	Messages []campaign.MessageSummary
	Before   string // this page's cursor, for the live rows
	Next     string // the next page's cursor, "" on the last page
}

// RowsQuery is the live rows' query string (listData.RowsQuery).
func (d messagesData) RowsQuery() string { return rowsQuery(d.Before) }

func (c *Console) messages(r *http.Request) (messagesData, error) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	before := r.URL.Query().Get("before")
	ms, next, err := c.cfg.Campaigns.Messages(ctx, before, listLimit) // a full last page has no next
	return messagesData{Messages: ms, Before: before, Next: next}, err
}

func (c *Console) messagesPage(w http.ResponseWriter, r *http.Request, s session) {
	d, err := c.messages(r)
	p := page{Title: "Direct messages", Nav: "messages", Session: s, Data: d, LiveError: true}
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
	Devices deviceOutcomes // once it is done
}

// deviceOutcomes is what became of each device of a done message, from the
// results stream (pipeline.ResultsOf): the question support gets ("did
// Ann's phone get the chat message?") answered on the message's page.
type deviceOutcomes struct {
	Events   []pipeline.ResultEvent // by user, at most maxDevicesShown
	Want     int                    // the devices with an outcome: sent + failed + invalid
	Found    int                    // the events found of them
	Complete bool                   // every one was found
	Command  string                 // the CLI command that reads them all
}

const (
	// maxDevicesShown bounds the page's table: a message may list 10,000
	// users; past it, the command prints them all.
	maxDevicesShown = 1000
	// devicesReadCap bounds the events read to find a message's: about a
	// second of reading, where a message that waited behind a large
	// campaign has its events after that campaign's.
	devicesReadCap = 100_000
	// clockSlack is how far before the message's creation (PostgreSQL's
	// clock) its events are looked for (results ids are Redis's clock).
	clockSlack = 5 * time.Second
)

// devices reads the outcomes of message m's devices, once it is done.
func (c *Console) devices(ctx context.Context, m campaign.MessageSummary) (deviceOutcomes, error) {
	rep := m.Report
	d := deviceOutcomes{Want: int(rep.Sent + rep.Failed + rep.InvalidTokens)}
	from := m.CreatedAt.Add(-clockSlack)
	d.Command = "pushpipe results tail --campaign " + rep.ID + " --from " + from.UTC().Format(time.RFC3339) + " --no-follow"
	evs, complete, err := pipeline.ResultsOf(ctx, c.cfg.Redis, c.cfg.Keys, rep.ID, from, d.Want, devicesReadCap)
	if err != nil {
		return d, err
	}
	slices.SortStableFunc(evs, func(a, b pipeline.ResultEvent) int {
		return cmp.Or(cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.Platform, b.Platform), cmp.Compare(a.Token, b.Token))
	})
	d.Found, d.Complete = len(evs), complete
	d.Events = evs[:min(len(evs), maxDevicesShown)]
	return d, nil
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
	if err == nil && m.Report.State == campaign.MessageDone && m.Report.RecordUnavailable == "" {
		// Read once: a done message's page does not poll (Console.live).
		// Not from a report of Redis alone (PostgreSQL down): it has no
		// creation time to read from, and its page polls until the
		// record is back.
		d.Devices, err = c.devices(ctx, m)
	}
	return d, err
}

// messageFailed answers a message that could not be read with why.
func (c *Console) messageFailed(w http.ResponseWriter, r *http.Request, s session, err error) {
	id := devices.Echo(r.PathValue("id")) // as typed, cut
	// No such message is no outage: it was logged as "Message … is
	// unavailable", a warning for each mistyped id.
	status, msg := http.StatusNotFound, "There is no direct message "+id+"."
	if !errors.Is(err, campaign.ErrNotFound) {
		status, msg = http.StatusServiceUnavailable, c.unavailable(r, "Message "+id+" is", err, polled(r))
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
		p := page{Nav: "messages", Session: s, Data: m}
		p.Title, p.ID = m.head()
		c.render(w, r, http.StatusOK, "message", p)
	}
}

// head is a message page's heading and the id to show beside it, as a
// campaign's (campaignData.head): the notification's title, else its body,
// as the messages list names it; "Message <id>" alone when it has neither
// (a silent push, or one read while PostgreSQL is down). It was "Message
// <id>" always, an id a backend made up, which support who had just
// clicked "Your order shipped" on the list did not recognise.
func (d messageData) head() (title, id string) {
	name := devices.Echo(cmp.Or(d.Title, d.Body, d.Report.ID))
	if name == d.Report.ID {
		return "Message " + name, ""
	}
	return name, d.Report.ID
}

func (c *Console) messageLive(w http.ResponseWriter, r *http.Request, s session) {
	if m, ok := c.message(w, r, s); ok {
		// Polled on while PostgreSQL is down, so the notice goes once it is back.
		c.live(w, "message", page{Session: s, Data: m}, m.Report.State == campaign.MessageDone && m.Report.RecordUnavailable == "")
	}
}
