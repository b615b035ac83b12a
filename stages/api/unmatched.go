package api

import (
	"net/http"
	"strings"

	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/stages/api/allow"
)

// pathMethods knows which methods each path the API serves takes, so that a
// known path asked with another method is a 405 whose Allow header and
// error say which: a 404 "no such endpoint: PUT /v1/campaigns" sent the
// caller looking for a path that was right all along, and clients and
// proxies read 405 + Allow as RFC 9110 §15.5.6 and net/http's ServeMux
// give it.
type pathMethods struct{ allow.Index }

// newPathMethods indexes routes' "METHOD /path" patterns; a route without a
// method (the console, which answers every method itself) is left out.
func newPathMethods(routes []route) pathMethods {
	patterns := make([]string, len(routes))
	for i, rt := range routes {
		patterns[i] = rt.pattern
	}
	return pathMethods{allow.New(patterns)}
}

// serveUnmatched answers r, which no route matched: 405 with Allow for a
// path the API serves with other methods, else 404.
func (pm pathMethods) serveUnmatched(w http.ResponseWriter, r *http.Request) {
	ms, header := pm.Of(r)
	if len(ms) == 0 {
		writeError(w, http.StatusNotFound, pm.unmatchedError(r, nil))
		return
	}
	w.Header().Set("Allow", header)
	writeError(w, http.StatusMethodNotAllowed, pm.unmatchedError(r, ms))
}

// unmatchedError is the error text for r, whose path takes methods (none:
// a path the API does not serve).
func (pm pathMethods) unmatchedError(r *http.Request, methods []string) string {
	// The method and path are the client's, echoed cut: a 10 KB path
	// came back twice in its 404.
	path := devices.Echo(r.URL.Path)
	msg := "no such endpoint: " + devices.Echo(r.Method) + " " + path
	if len(methods) > 0 {
		msg += " (" + path + " takes " + strings.Join(methods, " or ") + ")"
	}
	return msg + "; the routes are listed in GET " + OpenAPIPath + " (docs/API.md in the repository)"
}
