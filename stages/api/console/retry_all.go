package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// retryAllTimeout bounds a Retry all: as `pushpipe dlq retry --all`'s, a
// large DLQ takes many round trips, more than a page's requestTimeout.
const retryAllTimeout = 30 * time.Second

// retryAllDeadLetters retries every dead letter of the list's stream, group
// and campaign filter (every one without), as `pushpipe dlq retry --all
// [--stream S] [--group G] [--campaign ID]`:
// a receiver's outage left 1,682 letters, and the console offered only a
// Retry per row, the CLI the only way out.
func (c *Console) retryAllDeadLetters(w http.ResponseWriter, r *http.Request, s session) {
	stream := r.PostFormValue("stream")
	if stream != "" && !slices.Contains(pipeline.StageStreams(), stream) {
		c.fail(w, r, http.StatusBadRequest, page{Title: "Dead letters", Nav: "deadletters", Session: s,
			Error: "No stream " + devices.Echo(stream) + ": pick one of the list's."})
		return
	}
	group := r.PostFormValue("group")
	if group != "" && !webhook.ValidGroupName(group) {
		c.fail(w, r, http.StatusBadRequest, page{Title: "Dead letters", Nav: "deadletters", Session: s,
			Error: "No group " + devices.Echo(group) + ": pick one of the list's."})
		return
	}
	id := strings.TrimSpace(r.PostFormValue("campaign"))
	if id != "" && campaign.ValidateID(id) != nil {
		c.fail(w, r, http.StatusBadRequest, page{Title: "Dead letters", Nav: "deadletters", Session: s,
			Error: "No campaign or message " + devices.Echo(id) + ": an id has letters, digits, '.', '_' and '-' only."})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), retryAllTimeout)
	defer cancel()
	res, err := pipeline.NewDLQ(c.cfg.Redis, c.cfg.Keys).Retry(ctx, pipeline.DLQFilter{Stream: stream, Group: group, Campaign: id})
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, page{Title: "Dead letters", Nav: "deadletters", Session: s,
			Error: fmt.Sprintf("Retried %d, then stopped: %s. Those left are still listed; try again in a moment. %s",
				len(res.Done), culprit(err), c.failed(r, err, "console: retry all"))})
		return
	}
	if len(res.Failed) > 0 {
		// The DLQ's own reasons (malformed entry, retired group): what to
		// do, said for the first; the rest stay listed beside their own.
		ids := make([]string, 0, len(res.Failed))
		for id := range res.Failed {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		c.fail(w, r, http.StatusConflict, page{Title: "Dead letters", Nav: "deadletters", Session: s,
			Error: fmt.Sprintf("Retried %d; %d left in place, the first (%s): %s", len(res.Done), len(ids), ids[0], res.Failed[ids[0]])})
		return
	}
	// Back to the list as it was filtered: a campaign's letters retried
	// from its own list led to every letter of every campaign.
	q := url.Values{"done": {"retried-all"}, "n": {strconv.Itoa(len(res.Done))}}
	for k, v := range map[string]string{"stream": stream, "group": group, "campaign": id} {
		if v != "" {
			q.Set(k, v)
		}
	}
	http.Redirect(w, r, "/ui/deadletters?"+q.Encode(), http.StatusSeeOther)
}
