package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// Campaigns and direct messages are both rows of pipeline/campaign; their
// routes answer the same way. kind ("campaign", "message") names the record
// in what the client reads and in the logs.

// recordID is a create's "id" as the body gave it: left out (the zero
// value: the field's UnmarshalJSON is not called), null, or a string.
type recordID struct {
	given, null bool
	key         string
}

// UnmarshalJSON takes a string or null; anything else is refused naming
// the field.
func (r *recordID) UnmarshalJSON(b []byte) error {
	r.given = true
	if string(b) == "null" {
		r.null = true
		return nil
	}
	if len(b) == 0 || b[0] != '"' {
		return &valueError{fmt.Sprintf("id: must be a string, the idempotency key (1–128 of A-Z a-z 0-9 . _ -), got %.40s", b)}
	}
	return jsonv2.Unmarshal(b, &r.key, strict)
}

// idempotencyKey reads a create's "id": left out, "" (a new id is made
// for the record); given, the key itself. An empty string or null is
// refused (400, answered here): openapi.json says an id is a string of 1
// to 128 characters, and a client whose key came out empty or null (a
// variable unset, a nil serialized) believed its retries safe while each
// one made a new record and sent it to everyone again.
func idempotencyKey(w http.ResponseWriter, id recordID, kind string) (string, bool) {
	const give = `give the %s's idempotency key (1–128 of A-Z a-z 0-9 . _ -), ` +
		`the same on every retry, or leave "id" out to have one made (a retry without it is a new %s, sent again)`
	switch {
	case !id.given:
		return "", true
	case id.null:
		writeError(w, http.StatusBadRequest, fmt.Sprintf(`id: is null: `+give, kind, kind))
		return "", false
	case id.key == "":
		writeError(w, http.StatusBadRequest, fmt.Sprintf(`id: is empty: `+give, kind, kind))
		return "", false
	}
	return id.key, true
}

// answerCreated answers a create of a record: 422 for an app the API does
// not know (admitApp), 400 for invalid content, 409 for an id used by other
// content, 503 (with the id to post again) when the row is stored but not
// queued, createdCode when created, 200 when the same request was made
// before.
func (s *Server) answerCreated(w http.ResponseWriter, kind, id string, createdCode int, created bool, err error) {
	var verr *campaign.ValidationError
	var unknown unknownApp
	switch {
	case errors.As(err, &unknown):
		writeError(w, http.StatusUnprocessableEntity, unknown.Error())
	case errors.As(err, &verr):
		writeError(w, http.StatusBadRequest, verr.Error())
	case errors.Is(err, campaign.ErrOtherKind):
		// Not a changed retry: the id belongs to the other route's record.
		other, route := "a direct message's", "/v1/messages/"
		if kind == "message" {
			other, route = "a campaign's", "/v1/campaigns/"
		}
		writeError(w, http.StatusConflict, kind+" id "+id+" is "+other+" (GET "+route+id+"): campaigns and messages share one id space; give this "+kind+" another id")
	case errors.Is(err, campaign.ErrConflict):
		// The id is an idempotency key: the likeliest cause is a retry whose
		// content changed, and a new id would send the record twice.
		writeError(w, http.StatusConflict, kind+" id "+id+" is already used for different content: "+
			"if this is a retry of that "+kind+", it is already accepted and must not be sent again; use a new id only for a different "+kind)
	case errors.Is(err, campaign.ErrNotQueued):
		// The row exists: the same id again queues it (Create queues a
		// stored, unqueued row). A client that sent no id learns it here, or
		// its retry would be a new record and this one would never start.
		s.cfg.Log.Warn().Err(err).Str(idField(kind), id).Msg(kind + " stored but not queued")
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"id": id, "error": fmt.Sprintf(
			"%s %s is stored but could not be queued for sending (Redis or PostgreSQL failed); POST the same request with \"id\":%q again to start it: it is sent once however often it is posted",
			kind, id, id)})
	case err != nil:
		// Not unavailable's "nothing was accepted": PostgreSQL may have
		// committed the row and lost the connection before its answer.
		// The same id again is safe either way (it creates the record or
		// finds it), and a client that sent none learns it here: its retry
		// without one would be a second record, sent twice.
		s.cfg.Log.Warn().Err(err).Str(idField(kind), id).Msg(kind + " not created")
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"id": id, "error": fmt.Sprintf(
			"PostgreSQL or Redis failed while %s %s was being stored; retry in a second: POST the same request with \"id\":%q: it is sent once however often it is posted",
			kind, id, id)})
	case created:
		writeJSON(w, createdCode, map[string]string{"id": id})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"id": id})
	}
}

// withRecord runs fn for the record named by the path's {id}: 404 for an id
// that cannot exist or does not, 503 when PostgreSQL or Redis fails, else
// fn's answer as JSON with 200. conflictError and notFoundError, when fn
// returns them, are answered 409 and 404 with their text.
func (s *Server) withRecord(w http.ResponseWriter, r *http.Request, kind string, fn func(ctx context.Context, id string) (any, error)) {
	id := r.PathValue("id")
	if campaign.ValidateID(id) != nil {
		// A plain 404, as openapi.json has it ("or not a campaign id"):
		// the path names no record, whatever its spelling. The id's
		// syntax rules after "no campaign a b" read as a 400 about a
		// field "id" the request does not have.
		writeError(w, http.StatusNotFound, noRecord(kind, id))
		return
	}
	if !s.haveDB(w) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), campaignTimeout)
	defer cancel()
	rep, err := fn(ctx, id)
	var conflict conflictError
	var notFound notFoundError
	switch {
	case errors.As(err, &notFound):
		writeError(w, http.StatusNotFound, notFound.msg)
	case errors.Is(err, campaign.ErrIsCampaign):
		// Ids are shared by campaigns and messages: name the route that has it.
		writeError(w, http.StatusNotFound, "no "+kind+" "+id+": it is a campaign; see GET /v1/campaigns/"+id)
	case errors.Is(err, campaign.ErrIsMessage):
		msg := "no " + kind + " " + id + ": it is a direct message; see GET /v1/messages/" + id
		switch r.Method {
		case http.MethodPost:
			// Only a cancel posts here; a GET was not asking to cancel.
			msg += " (a message cannot be canceled)"
		case http.MethodPatch:
			msg += " (a message has no rate of its own to change)"
		}
		writeError(w, http.StatusNotFound, msg)
	case errors.Is(err, campaign.ErrNotFound):
		writeError(w, http.StatusNotFound, noRecord(kind, id))
	case errors.As(err, &conflict):
		writeError(w, http.StatusConflict, conflict.msg)
	case errors.Is(err, campaign.ErrPartial) && r.Method == http.MethodGet:
		// PostgreSQL is down and the report is Redis's: a launch being
		// watched stays visible, its record_unavailable saying what is
		// missing.
		s.partialLog.Warn().Err(err).Str(idField(kind), id).Msg(kind + " reported from Redis alone (said once every 10 s)")
		writeJSON(w, http.StatusOK, rep)
	case err != nil && r.Method == http.MethodGet:
		s.cfg.Log.Warn().Err(err).Str(idField(kind), id).Msg(kind + " unavailable")
		msg := unreachable(err) + ": the " + kind + " could not be read; retry in a moment"
		if errors.Is(err, campaign.ErrNotLive) {
			// Redis answered: it no longer holds (or never held) the id.
			keep := campaign.KeepCounters
			if kind == "message" {
				keep = campaign.KeepMessageCounters
			}
			days := fmt.Sprintf("%d days", int(keep.Hours()/24))
			if keep == 24*time.Hour {
				days = "a day"
			}
			msg = "PostgreSQL is unreachable, and Redis holds no " + kind + " " + id + " (it keeps one for " + days +
				" past its expiry; an older one is PostgreSQL's alone): retry once PostgreSQL is back"
		}
		retryLater(w, msg, time.Second)
	case err != nil:
		// Not unavailable's "nothing was accepted": a cancel sets its flag
		// in Redis before PostgreSQL records it, and may have stopped the
		// campaign already.
		s.cfg.Log.Warn().Err(err).Str(idField(kind), id).Msg(kind + " unavailable")
		retryLater(w, unreachable(err)+", and this may have taken effect in part: "+
			"send the same request again, which is safe to repeat", time.Second)
	default:
		writeJSON(w, http.StatusOK, rep)
	}
}

// noRecord is the 404 of a campaign or message (kind) id that names none,
// whether none has it or none can. "no campaign X" alone left the caller to
// guess where ids are. An id no record can have is quoted (and cut:
// devices.Echo), so that its spaces, quotes or control characters show
// where it ends; one that can be an id never needs quotes.
func noRecord(kind, id string) string {
	shown := id
	if campaign.ValidateID(id) != nil {
		shown = strconv.Quote(devices.Echo(id))
	}
	return "no " + kind + " " + shown + ": check the id (GET /v1/" + kind + "s lists them, newest first)"
}

// unreachable names the store that failed a read (campaign.ErrPostgres,
// campaign.ErrRedis): "PostgreSQL is unreachable", "Redis is unreachable",
// both, or, when the error does not say, either.
func unreachable(err error) string {
	if say, ok := campaign.Unreachable(err); ok {
		return say
	}
	return "PostgreSQL or Redis is unreachable"
}

// listUnavailable answers a list (GET /v1/campaigns or /v1/messages,
// route) that could not be read: 503 naming the store. A list pages
// PostgreSQL's table and needs it; one record at a time still answers from
// Redis while it is down (withRecord).
func listUnavailable(w http.ResponseWriter, route string, err error) {
	msg := unreachable(err) + ": the list could not be read; retry in a moment"
	if errors.Is(err, campaign.ErrPostgres) {
		msg = "PostgreSQL is unreachable: the list pages its table and cannot be read without it; retry in a moment " +
			"(meanwhile GET /v1/" + route + "/{id} answers from Redis for one still sending)"
	}
	retryLater(w, msg, time.Second)
}

// idField is the log field holding a record's id: "message" is zerolog's
// own field, so a message's id under it made a second "message" key on the
// line, and JSON readers kept one of the two.
func idField(kind string) string {
	if kind == "message" {
		return "message_id"
	}
	return kind
}

// conflictError is a request the record's state refuses (409).
type conflictError struct{ msg string }

func (e conflictError) Error() string { return e.msg }

// notFoundError is a 404 whose text says more than "no such record".
type notFoundError struct{ msg string }

func (e notFoundError) Error() string { return e.msg }
