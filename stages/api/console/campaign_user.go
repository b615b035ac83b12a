package console

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// userOutcomes is what became of one user's devices in a campaign, from
// the results stream (pipeline.ResultsOf): support's first question, "did
// user 42 get the launch, and if not, why?", on the campaign's page.
type userOutcomes struct {
	Campaign string
	Name     string // the campaign's name (Summary.Name), for the link back
	UserID   int64
	Events   []pipeline.ResultEvent // the user's devices, by platform and token
	Read     int                    // the campaign's events read
	Want     int                    // the campaign's devices with an outcome: sent + failed + invalid
	Complete bool                   // every one was read: no event of the user is elsewhere
	Command  string                 // the CLI command that reads them all
}

// campaignUserPage answers GET /ui/campaigns/{id}/user?user_id=N. It reads
// the campaign's events from its creation (less clockSlack) as far as
// devicesReadCap: the whole of a campaign of up to 100,000 devices, about
// a second; past that, it says so and gives the command that reads on.
func (c *Console) campaignUserPage(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("id")
	p := page{Title: "Campaign " + devices.Echo(id), Nav: "campaigns", Session: s} // not read yet: cut
	user, err := strconv.ParseInt(r.URL.Query().Get("user_id"), 10, 64)
	if err != nil || user <= 0 {
		p.Error = "A user id is a positive integer, such as 42."
		c.fail(w, r, http.StatusBadRequest, p)
		return
	}
	d, status, msg, _ := c.loadCampaign(r)
	if msg == "" && d.Progress.RecordUnavailable != "" {
		status, msg = http.StatusServiceUnavailable, "PostgreSQL is unreachable: a lookup reads from the campaign's creation, which PostgreSQL keeps. Reload the page in a moment."
	}
	if msg != "" {
		p.Error = msg
		c.fail(w, r, status, p)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	rep := d.Progress
	u := userOutcomes{Campaign: id, UserID: user, Want: int(rep.Sent + rep.Failed + rep.InvalidTokens),
		Command: fmt.Sprintf("pushpipe results tail --campaign %s --user %d --no-follow", id, user)}
	evs, complete, err := pipeline.ResultsOf(ctx, c.cfg.Redis, c.cfg.Keys, id, d.Campaign.CreatedAt.Add(-clockSlack), u.Want, devicesReadCap)
	if err != nil {
		p.Error = c.unavailable(r, "The lookup is", err, false) + " Reload the page in a moment."
		c.fail(w, r, http.StatusServiceUnavailable, p)
		return
	}
	u.Read, u.Complete = len(evs), complete
	for _, e := range evs {
		if e.UserID == user {
			u.Events = append(u.Events, e)
		}
	}
	slices.SortStableFunc(u.Events, func(a, b pipeline.ResultEvent) int {
		return cmp.Or(cmp.Compare(a.Platform, b.Platform), cmp.Compare(a.Token, b.Token))
	})
	// Headed by the campaign's name, its id beside, as its own page is:
	// "User 1001 in campaign 1a2522af885-a90d…" was not the "Launch day"
	// support had just clicked.
	u.Name = d.Name()
	p.Title, p.ID = d.head(fmt.Sprintf("User %d in ", user))
	if p.ID == "" {
		p.Title = fmt.Sprintf("User %d in campaign %s", user, d.Name())
	}
	p.Data = u
	c.render(w, r, http.StatusOK, "campaignuser", p)
}
