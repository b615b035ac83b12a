package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// listMessages is GET /v1/messages?limit=N&before=ID: the direct messages,
// newest first, as GET /v1/campaigns pages campaigns. The console lists
// them; a backend or an operator without a browser had no way to find a
// message whose id it had not kept.
func (s *Server) listMessages(w http.ResponseWriter, r *http.Request, _ []byte) {
	params := r.URL.Query() // checked by wrap (route.query)
	limit, ok := listLimit(w, params)
	if !ok {
		return
	}
	before := params.Get("before")
	if before != "" {
		if err := campaign.ValidateID(before); err != nil {
			// As the campaigns' list says it: "before: id: ..." named
			// a field the query has not.
			writeError(w, http.StatusBadRequest, "before: "+strings.TrimPrefix(err.Error(), "id: "))
			return
		}
	}
	if !s.haveDB(w) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), campaignTimeout)
	defer cancel()
	ms, next, err := campaign.ListMessages(ctx, s.cfg.Redis, s.cfg.DB, s.cfg.Keys, before, limit)
	switch {
	case errors.Is(err, campaign.ErrNotFound):
		writeError(w, http.StatusBadRequest, "before: no message "+before+"; pass the \"next\" of the previous page")
	case err != nil:
		s.cfg.Log.Warn().Err(err).Msg("message list unavailable")
		listUnavailable(w, "messages", err)
	default:
		writeJSON(w, http.StatusOK, campaign.NewMessagePage(ms, next))
	}
}
