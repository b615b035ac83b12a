package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// dbTimeout bounds a direct PostgreSQL write of the API (a subscription): past
// it the client gets a 503 and retries. A server that is down fails at once;
// like emitTimeout, this only bounds a slow one.
const dbTimeout = 5 * time.Second

// putSubscriber subscribes a user to a channel. Idempotent: subscribing twice
// is one subscription.
func (s *Server) putSubscriber(w http.ResponseWriter, r *http.Request, _ []byte) {
	s.writeSubscription(w, r,
		`INSERT INTO subscriptions (channel, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`)
}

// deleteSubscriber unsubscribes a user from a channel. Idempotent: removing an
// absent subscription is fine.
func (s *Server) deleteSubscriber(w http.ResponseWriter, r *http.Request, _ []byte) {
	s.writeSubscription(w, r, `DELETE FROM subscriptions WHERE channel = $1 AND user_id = $2`)
}

func (s *Server) writeSubscription(w http.ResponseWriter, r *http.Request, sql string) {
	channel := r.PathValue("channel")
	if err := devices.ValidateName("channel", channel); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	user, ok := pathUserID(w, r)
	if !ok {
		return
	}
	if !s.haveDB(w) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), dbTimeout)
	defer cancel()
	if _, err := s.cfg.DB.Exec(ctx, sql, channel, user); err != nil {
		s.dbError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// dbError answers a failed database write: 503 when PostgreSQL could not be
// reached in time or would not serve (retry), 400 when it refused a value
// (SQLSTATE class 22: the request's fault, never an outage), 500 when it
// answered with another error (a bug or a missing migration: retrying will
// not help).
func (s *Server) dbError(w http.ResponseWriter, err error) {
	var pgErr *pgconn.PgError
	var connErr *pgconn.ConnectError
	switch {
	case errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "40") || pgErr.Code == "57014"):
		// The server is up but gave this statement up (a deadlock, a
		// serialization failure, a statement timeout behind a lock):
		// "unreachable" would send the operator to the network.
		s.deviceLog().Warn().Err(err).Msg("database write not done: statement gave up")
		retryLater(w, "PostgreSQL did not complete the write ("+pgErr.Code+": "+pgErr.Message+"); nothing was accepted, retry later",
			time.Second)
	case errors.As(err, &connErr), errors.As(err, &pgErr) && transientSQLState(pgErr.Code):
		// The server's own refusal (too many connections, starting up,
		// shutting down) carries a SQLSTATE too, but is an outage.
		s.deviceLog().Warn().Err(err).Msg("database write not done: PostgreSQL unavailable")
		unavailable(w, "PostgreSQL", time.Second)
	case errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22"):
		writeError(w, http.StatusBadRequest, "PostgreSQL cannot store a value of this request ("+pgErr.Code+": "+pgErr.Message+"); correct it")
	case errors.As(err, &pgErr):
		s.cfg.Log.Error().Err(err).Msg("database write failed")
		writeError(w, http.StatusInternalServerError, "database error ("+pgErr.Code+"); is the schema migrated? (pushpipe migrate)")
	default:
		s.deviceLog().Warn().Err(err).Msg("database write not done: PostgreSQL unavailable")
		unavailable(w, "PostgreSQL", time.Second)
	}
}

// transientSQLState reports whether an error of this SQLSTATE may pass
// with time: connection exceptions (08), a transaction rolled back for a
// deadlock or serialization failure (40), resources spent (53, too many
// connections), operator intervention (57: shutdown, starting up, a
// statement timeout).
func transientSQLState(code string) bool {
	switch code[:min(2, len(code))] {
	case "08", "40", "53", "57":
		return true
	}
	return false
}

// pathUserID reads {user_id}: a positive integer.
func pathUserID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	s := r.PathValue("user_id")
	u, err := strconv.ParseInt(s, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(s, "-"):
		// "must be a positive integer" of 99999999999999999999 read as wrong.
		writeError(w, http.StatusBadRequest, fmt.Sprintf("user_id: %s is out of range: at most %d", devices.Echo(s), int64(math.MaxInt64)))
		return 0, false
	case err != nil || u <= 0:
		writeError(w, http.StatusBadRequest, "user_id: must be a positive integer, got "+strconv.Quote(devices.Echo(s)))
		return 0, false
	}
	return u, true
}
