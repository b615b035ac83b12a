package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// maxMuted bounds each list of a preferences update.
const maxMuted = 1000

type preferencesRequest struct {
	MutedChannels   []string `json:"muted_channels"`
	MutedCategories []string `json:"muted_categories"`
}

// replacePrefs swaps a user's whole preferences hash in one atomic step, so
// resolve never reads a half-updated set. KEYS[1] the hash; ARGV field, "1"...
var replacePrefs = rueidis.NewLuaScript(`
redis.call('DEL', KEYS[1])
for i = 1, #ARGV, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return 0`)

// putPreferences replaces a user's muted channels and categories:
// PUT /v1/users/{user_id}/preferences → 204. Idempotent.
func (s *Server) putPreferences(w http.ResponseWriter, r *http.Request, body []byte) {
	user, ok := pathUserID(w, r)
	if !ok {
		return
	}
	var req preferencesRequest
	if !decode(w, body, &req) {
		return
	}
	args := make([]string, 0, 2*(len(req.MutedChannels)+len(req.MutedCategories)))
	for _, l := range []struct {
		field string
		names []string
		key   func(string) string
	}{
		{"muted_channels", req.MutedChannels, pipeline.PrefChannel},
		{"muted_categories", req.MutedCategories, pipeline.PrefCategory},
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
			args = append(args, l.key(name), "1")
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), emitTimeout)
	defer cancel()
	err := replacePrefs.Exec(ctx, s.cfg.Redis, []string{s.cfg.Keys.Preferences(user)}, args).Error()
	if err != nil {
		s.deviceLog().Warn().Err(err).Msg("preferences not stored: Redis unavailable")
		unavailable(w, "Redis", time.Second)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
