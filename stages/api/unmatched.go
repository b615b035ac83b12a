package api

import (
	"net/http"
	"strings"

	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// pathMethods knows which methods each path the API serves takes, so that
// the 404 of a known path asked with another method says which: "no such
// endpoint: PUT /v1/campaigns" alone sent the caller looking for a path
// that was right all along.
type pathMethods struct {
	mux     *http.ServeMux      // each route's path pattern, without its method
	methods map[string][]string // path pattern → its methods, in route order
}

// newPathMethods indexes routes' "METHOD /path" patterns; a route without a
// method (the console, which answers every method itself) is left out.
func newPathMethods(routes []route) pathMethods {
	pm := pathMethods{mux: http.NewServeMux(), methods: map[string][]string{}}
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
	return pm
}

// of is the methods r's path takes, none for a path the API does not serve.
func (pm pathMethods) of(r *http.Request) []string {
	_, pattern := pm.mux.Handler(r)
	return pm.methods[pattern]
}

// unmatchedError is the 404's text for r, which no route matched.
func (pm pathMethods) unmatchedError(r *http.Request) string {
	// The method and path are the client's, echoed cut: a 10 KB path
	// came back twice in its 404.
	path := devices.Echo(r.URL.Path)
	msg := "no such endpoint: " + devices.Echo(r.Method) + " " + path
	if ms := pm.of(r); len(ms) > 0 {
		msg += " (" + path + " takes " + strings.Join(ms, " or ") + ")"
	}
	return msg + "; the routes are listed in GET " + OpenAPIPath + " (docs/API.md in the repository)"
}
