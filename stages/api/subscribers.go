package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// MaxSubscriberBatch is how many user ids one bulk subscription request
// may add and remove together.
const MaxSubscriberBatch = 10_000

// subscribersBody: 10,000 ids of up to 19 digits, a comma and some
// whitespace each.
const subscribersBody = 320 << 10

type subscribersRequest struct {
	Add    []int64 `json:"add"`
	Remove []int64 `json:"remove"`
}

// postSubscribers subscribes and unsubscribes users of a channel in bulk:
// POST /v1/channels/{channel}/subscribers {"add":[ids],"remove":[ids]} →
// 204, in one statement (all or nothing). Idempotent; at most
// MaxSubscriberBatch ids in all (413 past it); an id in both lists is 400;
// empty lists are a 204 that changes nothing, no list at all a 400.
func (s *Server) postSubscribers(w http.ResponseWriter, r *http.Request, body []byte) {
	channel := r.PathValue("channel")
	if err := devices.ValidateName("channel", channel); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var req subscribersRequest
	if !decode(w, body, &req) {
		return
	}
	if n := len(req.Add) + len(req.Remove); n > MaxSubscriberBatch {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"%d user ids in add and remove; at most %d per request: split them, or load a whole list with `pushpipe import subscribers`", n, MaxSubscriberBatch))
		return
	} else if req.Add == nil && req.Remove == nil {
		// Neither list: a client that built the body wrong, not a change.
		writeError(w, http.StatusBadRequest, `add, remove: give at least one of the lists, e.g. {"add":[42]}`)
		return
	} else if n == 0 {
		// Both empty lists: a sync job with nothing to change this time. A
		// 400 made each such job special-case "no change"; it changes
		// nothing, and is done.
		w.WriteHeader(http.StatusNoContent)
		return
	}
	adding := make(map[int64]struct{}, len(req.Add))
	for i, u := range req.Add {
		if u <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("add[%d]: user ids are positive integers, got %d", i, u))
			return
		}
		adding[u] = struct{}{}
	}
	for i, u := range req.Remove {
		if u <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("remove[%d]: user ids are positive integers, got %d", i, u))
			return
		}
		if _, ok := adding[u]; ok {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("remove[%d]: user %d is in add too; give each id once", i, u))
			return
		}
	}
	if !s.haveDB(w) {
		return
	}
	// Ascending, so that requests adding overlapping ids at once lock their
	// rows in one order: in each client's own order, two could each wait
	// for a row the other inserted first, and PostgreSQL would fail one of
	// them (deadlock_detected).
	slices.Sort(req.Add)
	slices.Sort(req.Remove)
	ctx, cancel := context.WithTimeout(r.Context(), dbTimeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, s.cfg.DB, func(tx pgx.Tx) error {
		// One bulk change of a channel at a time: a statement's insert and
		// delete lock rows in no order PostgreSQL promises, so two requests
		// where one adds what the other removes could each hold a row the
		// other waits for (deadlock_detected, one of them failed). Single
		// subscribes touch one row and cannot close such a cycle.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('pushpipe subscriptions ' || $1, 0))`,
			channel); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
			WITH added AS (
				INSERT INTO subscriptions (channel, user_id) SELECT $1, unnest($2::bigint[])
				ON CONFLICT DO NOTHING
			)
			DELETE FROM subscriptions WHERE channel = $1 AND user_id = ANY($3::bigint[])`,
			channel, nonNil(req.Add), nonNil(req.Remove))
		return err
	})
	if err != nil {
		s.dbError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// nonNil: pgx sends a nil slice as NULL, which unnest and ANY read as no rows
// anyway; an empty array says so plainly.
func nonNil(ids []int64) []int64 {
	if ids == nil {
		return []int64{}
	}
	return ids
}
