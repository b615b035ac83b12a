package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// listMessages is GET /v1/messages?limit=N&before=ID: the direct messages,
// newest first, as GET /v1/campaigns pages campaigns. The console lists
// them; a backend or an operator without a browser had no way to find a
// message whose id it had not kept.
func (s *Server) listMessages(w http.ResponseWriter, r *http.Request, _ []byte) {
	params, ok := queryParams(w, r, "limit", "before")
	if !ok {
		return
	}
	limit := 0
	if v := params.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > campaign.MaxListLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit: must be a number from 1 to %d, got %q", campaign.MaxListLimit, v))
			return
		}
		limit = n
	}
	before := params.Get("before")
	if before != "" {
		if err := campaign.ValidateID(before); err != nil {
			writeError(w, http.StatusBadRequest, "before: "+err.Error())
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
