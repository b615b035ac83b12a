package console

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// listLimit is how many campaigns the list shows at once.
const listLimit = 20

func (c *Console) home(w http.ResponseWriter, r *http.Request, _ session) {
	http.Redirect(w, r, "/ui/campaigns", http.StatusSeeOther)
}

type listData struct {
	Campaigns []Summary
	Before    string // this page's cursor, for the live rows
	Next      string // the next page's cursor, "" on the last page
}

// RowsQuery is the live rows' query string: the cursor as a query value,
// escaped, as it came in the page's URL ("" for none). Put in hx-get as
// it was, a typed "a&state=x" polled with a parameter of its own.
func (d listData) RowsQuery() string { return rowsQuery(d.Before) }

// rowsQuery is "?before=" and the cursor, escaped, or "" for none.
func rowsQuery(before string) string {
	if before == "" {
		return ""
	}
	return "?before=" + url.QueryEscape(before)
}

func (c *Console) list(r *http.Request) (listData, error) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	before := r.URL.Query().Get("before")
	// The model's cursor, not "a full page": a full last page would
	// offer an older page that is empty.
	cs, next, err := c.cfg.Campaigns.List(ctx, before, listLimit)
	return listData{Campaigns: cs, Before: before, Next: next}, err
}

func (c *Console) campaignsPage(w http.ResponseWriter, r *http.Request, s session) {
	d, err := c.list(r)
	p := page{Title: "Campaigns", Nav: "campaigns", Session: s, Data: d, Notice: notice(r), LiveError: true}
	status := http.StatusOK
	if err != nil {
		p.Error, status = c.listFailed(r, "The campaign list is", "campaign", "/ui/campaigns", d.Before, err, true)
	}
	c.render(w, r, status, "campaigns", p)
}

func (c *Console) campaignRows(w http.ResponseWriter, r *http.Request, s session) {
	d, err := c.list(r)
	p := page{Session: s, Data: d}
	if err != nil {
		p.Error, _ = c.listFailed(r, "The campaign list is", "campaign", "/ui/campaigns", d.Before, err, true)
	}
	c.fragment(w, "campaigns", "rows", p)
}

type campaignData struct {
	Summary
	Failures  []Reason
	MostFails int64  // the top reason's devices: the bars' full length
	NoReasons string // why failures by reason could not be read
	CanCancel bool
	// Settled says nothing on the page will change: the campaign is final
	// and, if it was canceled, long enough ago that the sends in flight at
	// the cancel are counted (settled). Its page stops polling then.
	Settled bool
	// Waiting names the stages the campaign goes through that have no
	// running process (pipeline.NotRunning): a campaign whose deliverers
	// were killed sat at "running" with nothing to say why it did not move.
	Waiting []string
	// InPlace is a cancel asked from the campaign list's row (htmx): the
	// question and its answer are swapped into the list, which stays.
	InPlace bool
	// FromList is the cancel page opened from the list's row without
	// script (?from=list): its "No" leads back to the list, where the
	// operator was, not to the campaign's page.
	FromList bool
}

// cancelSettles is how long after a cancel the sends that were in flight
// may still be counted: a send starts at most 1 s after it (DESIGN's
// cancel bound) and a provider request takes at most its 30 s timeout, and
// its mark follows. A page that stopped at "canceled" showed fewer sends
// than the campaign made, until reloaded.
const cancelSettles = 35 * time.Second

// settled reports whether a campaign's report will change no more, at now.
func settled(p campaign.Report, now time.Time) bool {
	if !campaign.Final(p.State) {
		return false
	}
	return p.State != campaign.StateCanceled || p.FinishedAt == nil || now.Sub(*p.FinishedAt) >= cancelSettles
}

func (c *Console) campaign(w http.ResponseWriter, r *http.Request, s session) (campaignData, bool) {
	d, status, msg, _ := c.loadCampaign(r)
	if msg != "" {
		c.fail(w, r, status, page{Title: "Campaign", Nav: "campaigns", Session: s, Error: msg})
		return d, false
	}
	return d, true
}

// loadCampaign reads the campaign of the path; when it cannot, the status,
// the sentence to answer with and the error.
func (c *Console) loadCampaign(r *http.Request) (campaignData, int, string, error) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	id := r.PathValue("id")
	sum, err := c.cfg.Campaigns.Get(ctx, id)
	if err != nil {
		switch {
		case errors.Is(err, campaign.ErrIsMessage):
			return campaignData{}, http.StatusNotFound, id + " is a direct message, not a campaign: see Messages.", err
		case errors.Is(err, campaign.ErrNotFound):
			// The id as the API's 404 echoes it: cut, so the page
			// does not grow with whatever the URL held.
			return campaignData{}, http.StatusNotFound, "There is no campaign " + devices.Echo(id) + ".", err
		}
		return campaignData{}, http.StatusServiceUnavailable, c.unavailable(r, "Campaign "+devices.Echo(id)+" is", err, polled(r)), err
	}
	// A report from Redis alone (PostgreSQL down) is never settled: the
	// page polls on until the record is back. It offers no cancel: one
	// would be refused, naming PostgreSQL, and stop nothing.
	partial := sum.Progress.RecordUnavailable != ""
	d := campaignData{Summary: sum, CanCancel: sum.Cancelable(), Settled: settled(sum.Progress, time.Now()) && !partial}
	if st := sum.Progress.State; !campaign.Final(st) && st != campaign.StateScheduled {
		// Unreadable liveness says nothing: the figures say Redis is away.
		d.Waiting, _ = pipeline.NotRunning(ctx, c.cfg.Redis, c.cfg.Keys, "split", "resolve", "dedupe", "deliver")
	}
	d.Failures, err = c.cfg.Campaigns.Failures(ctx, id)
	if err != nil {
		d.NoReasons = c.unavailable(r, "Failures by reason are", err, !d.Settled) // the live part polls until settled
	}
	for _, f := range d.Failures {
		d.MostFails = max(d.MostFails, f.Count)
	}
	return d, http.StatusOK, "", nil
}

func (c *Console) campaignPage(w http.ResponseWriter, r *http.Request, s session) {
	d, status, msg, err := c.loadCampaign(r)
	switch {
	case errors.Is(err, campaign.ErrIsMessage):
		// A direct message's id opens its own page: the dead letters
		// of an express lane link their message's id as their
		// campaign, and led to "There is no campaign …".
		http.Redirect(w, r, "/ui/messages/"+url.PathEscape(r.PathValue("id")), http.StatusSeeOther)
	case msg != "":
		c.fail(w, r, status, page{Title: "Campaign", Nav: "campaigns", Session: s, Error: msg})
	default:
		p := page{Nav: "campaigns", Session: s, Data: d, Notice: notice(r)}
		p.Title, p.ID = d.head("")
		c.render(w, r, http.StatusOK, "campaign", p)
	}
}

// head is a campaign page's heading, its name after prefix, and the id to
// show beside it: none when the name is the id already (a campaign with
// neither title nor body, or one read while PostgreSQL is down), which
// then reads "Campaign <id>".
func (d campaignData) head(prefix string) (title, id string) {
	name := d.Name()
	if name == d.Campaign.ID {
		return cmp.Or(prefix, "Campaign ") + name, ""
	}
	return prefix + name, d.Campaign.ID
}

func (c *Console) campaignLive(w http.ResponseWriter, r *http.Request, s session) {
	if d, ok := c.campaign(w, r, s); ok {
		c.live(w, "campaign", page{Session: s, Data: d}, d.Settled)
	}
}

// cancelPage asks before a cancel: a page of its own, or, asked from the
// list's row (htmx), the question alone, answered in place (inPlace). An
// operator watching a launch go wrong on the list had to open the campaign
// first.
func (c *Console) cancelPage(w http.ResponseWriter, r *http.Request, s session) {
	if d, ok := c.campaign(w, r, s); ok {
		if inPlace(r) {
			d.InPlace = true
			c.fragment(w, "cancel", "question", page{Session: s, Data: d})
			return
		}
		d.FromList = r.URL.Query().Get("from") == "list"
		p := page{Nav: "campaigns", Session: s, Data: d}
		p.Title, p.ID = d.head("Cancel ")
		c.render(w, r, http.StatusOK, "cancel", p)
	}
}

// cancelCampaign answers as POST /v1/campaigns/{id}/cancel does: 404 for
// no such campaign (a direct message included: it cannot be canceled), 409
// for one already finished, 503 when Redis or PostgreSQL failed, each with
// its own sentence; the cancel page again when the campaign can be read.
func (c *Console) cancelCampaign(w http.ResponseWriter, r *http.Request, s session) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	id := r.PathValue("id")
	err := c.cfg.Campaigns.Cancel(ctx, id)
	if err == nil && inPlace(r) {
		// The list's row: the answer where the question was, naming the
		// campaign (its row says "canceled" at the next refresh).
		d, _, _, _ := c.loadCampaign(r)
		d.Campaign.ID = id // unread, the id alone names it
		c.fragment(w, "cancel", "canceled", page{Session: s, Data: d})
		return
	}
	if err == nil {
		http.Redirect(w, r, "/ui/campaigns/"+url.PathEscape(id)+"?done=canceled", http.StatusSeeOther)
		return
	}
	say := devices.Echo(id) // the id as typed, cut
	p := page{Title: "Cancel " + devices.Echo(id), Nav: "campaigns", Session: s}
	d, _, unreadable, _ := c.loadCampaign(r)
	var status int
	switch {
	case errors.Is(err, campaign.ErrIsMessage):
		status, p.Error = http.StatusNotFound, id+" is a direct message, not a campaign: a message cannot be canceled."
	case errors.Is(err, campaign.ErrNotFound):
		status, p.Error = http.StatusNotFound, "There is no campaign "+say+" to cancel."
	case errors.Is(err, campaign.ErrFinished):
		status, p.Error = http.StatusConflict, "Not canceled: campaign "+id+" is already "+cmp.Or(d.Progress.State, "finished")+": there is nothing left to cancel."
	default:
		status, p.Error = http.StatusServiceUnavailable, "Not canceled: "+culprit(err)+
			". Try again in a moment: canceling twice is safe. "+c.failed(r, err, "console: campaign "+say+" not canceled")
	}
	if status == http.StatusNotFound || unreadable != "" || inPlace(r) {
		c.fail(w, r, status, p) // in place: the sentence alone
		return
	}
	p.Data = d
	p.Title, p.ID = d.head("Cancel ")
	c.render(w, r, status, "cancel", p)
}

// rateCampaign changes a campaign's own cap as PATCH /v1/campaigns/{id}
// does, from the form on its page: back to the page, which shows the new
// rate, or the page again under the refusal's sentence: 400 for a value
// out of bounds, 404 for no such campaign (a direct message included),
// 409 for one already final, 503 when Redis or PostgreSQL failed.
func (c *Console) rateCampaign(w http.ResponseWriter, r *http.Request, s session) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	id := r.PathValue("id")
	say := devices.Echo(id)
	var status int
	p := page{Title: "Campaign " + say, Nav: "campaigns", Session: s}
	n, perr := strconv.Atoi(strings.TrimSpace(r.PostFormValue("rate_per_second")))
	if perr != nil || n < 0 || n > campaign.MaxRatePerSecond {
		status, p.Error = http.StatusBadRequest, fmt.Sprintf("Rate not changed: give a whole number of sends per second from 0 (no cap of its own) to %s.", num(campaign.MaxRatePerSecond))
	} else {
		err := c.cfg.Campaigns.SetRate(ctx, id, n)
		switch {
		case err == nil:
			http.Redirect(w, r, "/ui/campaigns/"+url.PathEscape(id)+"?done=rated", http.StatusSeeOther)
			return
		case errors.Is(err, campaign.ErrIsMessage):
			status, p.Error = http.StatusNotFound, id+" is a direct message, not a campaign: a message has no rate of its own."
		case errors.Is(err, campaign.ErrNotFound):
			status, p.Error = http.StatusNotFound, "There is no campaign "+say+"."
		case errors.Is(err, campaign.ErrFinished):
			status = http.StatusConflict // said below, with its state
		default:
			status, p.Error = http.StatusServiceUnavailable, "Rate not changed: "+culprit(err)+
				". Try again in a moment: setting it twice is safe. "+c.failed(r, err, "console: rate of campaign "+say+" not changed")
		}
	}
	d, _, unreadable, _ := c.loadCampaign(r)
	if status == http.StatusConflict {
		p.Error = "Rate not changed: campaign " + id + " is already " + cmp.Or(d.Progress.State, "finished") + ": its rate can no longer change."
	}
	if status == http.StatusNotFound || unreadable != "" {
		c.fail(w, r, status, p)
		return
	}
	p.Data = d
	p.Title, p.ID = d.head("")
	c.render(w, r, status, "campaign", p)
}

// notice turns a redirect's ?done= into its sentence: fixed texts only, so
// a crafted link cannot make the console say anything else.
func notice(r *http.Request) string {
	done := r.URL.Query().Get("done")
	if n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64); done == "retried-all" && err == nil && n > 0 {
		// How many, a number and nothing else: "Dead letters retried"
		// after a Retry all of 34,665 did not say whether it took them all.
		return num(n) + " dead " + map[bool]string{true: "letter", false: "letters"}[n == 1] + " retried: their entries are back in their streams. " +
			"A letter dead-lettered again (its receiver or provider still failing) is listed anew."
	}
	return map[string]string{
		"created":     "Campaign created.",
		"canceled":    "Campaign canceled.",
		"rated":       "Rate changed: every deliver process paces the campaign at it within a second.",
		"retried":     "Dead letter retried: its entry is back in its stream.",
		"retried-all": "Dead letters retried: their entries are back in their streams. A letter dead-lettered again (its receiver or provider still failing) is listed anew.",
		"dropped":     "Dead letter dropped.",
	}[done]
}
