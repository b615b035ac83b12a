package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/pipeline/prefs"
)

// maxMuted bounds each list of a preferences update.
const maxMuted = 1000

type preferencesRequest struct {
	MutedChannels   mutedChannels `json:"muted_channels"`
	MutedCategories []string      `json:"muted_categories"`
}

// preferencesResponse is what GET returns: names, as stored.
type preferencesResponse struct {
	MutedChannels   []string `json:"muted_channels"`
	MutedCategories []string `json:"muted_categories"`
}

// getPreferences reads a user's mutes from PostgreSQL:
// GET /v1/users/{user_id}/preferences → 200, empty lists for a user who set
// none. A settings screen shows them, and a backend changing one mute
// reads the set its PUT replaces.
func (s *Server) getPreferences(w http.ResponseWriter, r *http.Request, _ []byte) {
	user, ok := pathUserID(w, r)
	if !ok {
		return
	}
	if !s.haveDB(w) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), emitTimeout)
	defer cancel()
	p, err := prefs.Get(ctx, s.cfg.DB, user)
	if err != nil {
		s.deviceLog().Warn().Err(err).Msg("preferences not read")
		unreadable(w, "the preferences of user "+strconv.FormatInt(user, 10))
		return
	}
	writeJSON(w, http.StatusOK, preferencesResponse{MutedChannels: p.Channels, MutedCategories: p.Categories})
}

// putPreferences replaces a user's muted channels and categories:
// PUT /v1/users/{user_id}/preferences → 204, once PostgreSQL (the record
// of truth) and Redis (resolve's copy) both hold them (pipeline/prefs).
// Idempotent.
func (s *Server) putPreferences(w http.ResponseWriter, r *http.Request, body []byte) {
	user, ok := pathUserID(w, r)
	if !ok {
		return
	}
	var req preferencesRequest
	if !decode(w, body, &req) {
		return
	}
	for _, l := range []struct {
		field string
		names []string
	}{
		{"muted_channels", []string(req.MutedChannels)},
		{"muted_categories", req.MutedCategories},
	} {
		if len(l.names) > maxMuted {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s: at most %d entries, got %d", l.field, maxMuted, len(l.names)))
			return
		}
		for i, name := range l.names {
			if err := devices.ValidateName(fmt.Sprintf("%s[%d]", l.field, i), name); err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
		}
	}
	if !s.haveDB(w) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), emitTimeout)
	defer cancel()
	p := prefs.Prefs{User: user, Channels: distinct(req.MutedChannels), Categories: distinct(req.MutedCategories)}
	if err := prefs.Put(ctx, s.cfg.DB, s.cfg.Redis, s.cfg.Keys, p); err != nil {
		s.deviceLog().Warn().Err(err).Msg("preferences not stored")
		// Not unavailable's "nothing was accepted": Put writes PostgreSQL
		// before Redis, so the set may be stored there already, and a
		// client that believed otherwise would leave GET showing mutes
		// that resolve, reading Redis, does not apply.
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "PostgreSQL or Redis is unreachable, and the preferences may be stored in part "+
			"(GET may show them before they apply to sends): PUT the same request again, which is safe to repeat")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// distinct is names without repeats, in their first order: the lists are
// sets (resolve reads a hash), and a client that appended a mute it had
// already, or sent 101 and "101", got both back from GET.
func distinct(names []string) []string {
	seen := make(map[string]bool, len(names))
	out := make([]string, 0, len(names))
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
