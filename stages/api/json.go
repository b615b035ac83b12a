package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError writes {"error": msg}: what is wrong and what to do.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// unavailable answers 503 with Retry-After: the event was not accepted.
func unavailable(w http.ResponseWriter, what string, retryAfter time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(retryAfter.Seconds()))))
	writeError(w, http.StatusServiceUnavailable, what+" is unreachable; nothing was accepted, retry later")
}

// decode reads exactly one JSON value into v, rejecting unknown fields and
// trailing data. It writes the 400/413 itself and returns false on failure.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// Only whitespace may follow; reading it may still hit the body
		// cap (a value padded past it), which is a 413 like any other.
		var tooBig *http.MaxBytesError
		if _, terr := dec.Token(); terr != io.EOF && !errors.As(terr, &tooBig) {
			err = errors.New("unexpected data after the JSON value")
		} else if terr != io.EOF {
			err = terr
		}
	}
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes; split it", tooBig.Limit))
		return false
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" { // the body itself
			writeError(w, http.StatusBadRequest, "the body: expected a JSON object, got "+typeErr.Value)
			return false
		}
		writeError(w, http.StatusBadRequest, fmt.Sprintf("field %q: expected %s, got %s", typeErr.Field, typeErr.Type, typeErr.Value))
		return false
	}
	if errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "empty body: send a JSON object")
		return false
	}
	writeError(w, http.StatusBadRequest, "bad JSON: "+err.Error())
	return false
}
