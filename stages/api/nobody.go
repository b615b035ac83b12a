package api

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
)

// noBodyHints say where what a client sent in the body of a route that
// reads none belongs.
var noBodyHints = map[string]string{
	"PUT /v1/channels/{channel}/subscribers/{user_id}":    "the channel and the user are the path's; for several users send POST /v1/channels/{channel}/subscribers {\"add\":[...],\"remove\":[...]}",
	"DELETE /v1/channels/{channel}/subscribers/{user_id}": "the channel and the user are the path's; for several users send POST /v1/channels/{channel}/subscribers {\"add\":[...],\"remove\":[...]}",
	"POST /v1/campaigns/{id}/cancel":                      "the campaign is the path's; a rate is changed by PATCH /v1/campaigns/{id} {\"rate_per_second\":N}",
}

// noBodyPeek is how much of a body a route that reads none looks at: enough
// to tell an empty object from content, and to spend nothing on the rest.
const noBodyPeek = 64

// noBody answers 400 and false when a request to a route that reads no
// body (route.body 0) carries one that says something: it was ignored, and
// a PUT of a subscriber with {"user_id":2} in its body subscribed the
// user of its path, not 2, answering 204 as if it had done what was
// meant. An empty body, whitespace or {} (what some clients send with
// every POST) says nothing and passes.
func noBody(w http.ResponseWriter, r *http.Request, pattern string) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	peek, err := io.ReadAll(io.LimitReader(r.Body, noBodyPeek))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return false
	}
	switch string(bytes.Join(bytes.Fields(peek), nil)) {
	case "", "{}":
		if len(peek) < noBodyPeek {
			return true
		}
	}
	msg := fmt.Sprintf("%s takes no body, and this one was not read: send the request without it", pattern)
	if hint := noBodyHints[pattern]; hint != "" {
		msg += " (" + hint + ")"
	}
	writeError(w, http.StatusBadRequest, msg)
	return false
}
