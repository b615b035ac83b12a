package api

import (
	"net/http"
	"slices"
	"strings"

	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// pathMethods knows which methods each path the API serves takes, so that a
// known path asked with another method is a 405 whose Allow header and
// error say which: a 404 "no such endpoint: PUT /v1/campaigns" sent the
// caller looking for a path that was right all along, and clients and
// proxies read 405 + Allow as RFC 9110 §15.5.6 and net/http's ServeMux
// give it.
type pathMethods struct {
	mux     *http.ServeMux      // each route's path pattern, without its method
	methods map[string][]string // path pattern → its methods, in route order
	allow   map[string]string   // path pattern → its Allow header
}

// newPathMethods indexes routes' "METHOD /path" patterns; a route without a
// method (the console, which answers every method itself) is left out.
func newPathMethods(routes []route) pathMethods {
	pm := pathMethods{mux: http.NewServeMux(), methods: map[string][]string{}, allow: map[string]string{}}
	for _, rt := range routes {
		method, path, ok := strings.Cut(rt.pattern, " ")
		if !ok {
			continue
		}
		if _, seen := pm.methods[path]; !seen {
			pm.mux.Handle(path, http.NotFoundHandler()) // never served: only matched
		}
		pm.methods[path] = append(pm.methods[path], method)
	}
	for path, ms := range pm.methods {
		pm.allow[path] = allowHeader(ms)
	}
	return pm
}

// allowHeader is the Allow header of a path taking methods, as net/http's
// ServeMux writes it: sorted, and HEAD beside GET, which a "GET /path"
// pattern serves too (the server sends the headers without the body).
func allowHeader(methods []string) string {
	all := slices.Clone(methods)
	if slices.Contains(all, http.MethodGet) && !slices.Contains(all, http.MethodHead) {
		all = append(all, http.MethodHead)
	}
	slices.Sort(all)
	return strings.Join(slices.Compact(all), ", ")
}

// serveUnmatched answers r, which no route matched: 405 with Allow for a
// path the API serves with other methods, else 404.
func (pm pathMethods) serveUnmatched(w http.ResponseWriter, r *http.Request) {
	_, pattern := pm.mux.Handler(r)
	ms := pm.methods[pattern]
	if len(ms) == 0 {
		writeError(w, http.StatusNotFound, pm.unmatchedError(r, nil))
		return
	}
	w.Header().Set("Allow", pm.allow[pattern])
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
