package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/users"
)

// getUser shows what pushpipe holds about one user: GET /v1/users/{user_id}
// → 200 with the device rows (tombstones too: an invalidated token is why a
// user got nothing), the channels, the mutes and the last erasure. A user
// never seen is empty lists: user ids are not registered anywhere else.
func (s *Server) getUser(w http.ResponseWriter, r *http.Request, _ []byte) {
	user, ok := pathUserID(w, r)
	if !ok || !s.haveDB(w) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), dbTimeout)
	defer cancel()
	v, err := users.Show(ctx, s.cfg.DB, user)
	if err != nil {
		s.deviceLog().Warn().Err(err).Msg("user not read")
		unreadable(w, "user "+strconv.FormatInt(user, 10))
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// deleteUser erases a user: DELETE /v1/users/{user_id} → 202. The
// subscriptions and mutes are gone when it answers; each device row gets a
// delete event in the ingest stream, applied by ingest as DELETE
// /v1/devices's are (hence 202, not 204), and the recorded erasure makes
// ingest drop the user's registrations accepted before it that are still
// queued. A registration accepted after it registers the device again.
// Idempotent: after a 503, the same DELETE again finishes the job.
func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, _ []byte) {
	user, ok := pathUserID(w, r)
	if !ok || !s.haveDB(w) {
		return
	}
	// Not the request's context: an erasure cut short by a client that
	// went away is done in part, and a retry would be needed to finish it.
	ctx, cancel := context.WithTimeout(context.Background(), emitTimeout)
	defer cancel()
	// The device events' clock: the erasure is ordered against this
	// process's registrations as they are against each other.
	e, err := users.Erase(ctx, s.cfg.DB, s.cfg.Redis, s.cfg.Keys, user, s.dev.clock.Stamp(1))
	if err != nil {
		s.deviceLog().Warn().Err(err).Int64("user", user).Msg("user erasure not finished")
		retryLater(w, "PostgreSQL or Redis is unreachable and the erasure may be done in part: "+
			"DELETE the user again, which is safe to repeat", time.Second)
		return
	}
	writeJSON(w, http.StatusAccepted, e)
}
