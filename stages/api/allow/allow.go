// Package allow knows the methods each path of a route table takes, so that
// a known path asked with another method is answered 405 Method Not Allowed
// with the Allow header naming them (RFC 9110 §15.5.6), as net/http's
// ServeMux answers, rather than the 404 of a path that does not exist. The
// API and the console both keep their own mux for their handlers; this is
// the one index of their patterns.
package allow

import (
	"net/http"
	"slices"
	"strings"
)

// Index maps the paths of "METHOD /path" patterns to their methods.
type Index struct {
	mux     *http.ServeMux      // each pattern's path, without its method
	methods map[string][]string // path pattern → its methods, in pattern order
	header  map[string]string   // path pattern → its Allow header
}

// New indexes patterns; one without a method (a handler answering every
// method itself) is left out.
func New(patterns []string) Index {
	x := Index{mux: http.NewServeMux(), methods: map[string][]string{}, header: map[string]string{}}
	for _, p := range patterns {
		method, path, ok := strings.Cut(p, " ")
		if !ok {
			continue
		}
		if _, seen := x.methods[path]; !seen {
			x.mux.Handle(path, http.NotFoundHandler()) // never served: only matched
		}
		x.methods[path] = append(x.methods[path], method)
	}
	for path, ms := range x.methods {
		x.header[path] = header(ms)
	}
	return x
}

// Of is the methods r's path takes, in pattern order, and its Allow header;
// none and "" for a path no pattern has.
func (x Index) Of(r *http.Request) (methods []string, allow string) {
	_, pattern := x.mux.Handler(r)
	return x.methods[pattern], x.header[pattern]
}

// header is the Allow header of a path taking methods, as net/http's
// ServeMux writes it: sorted, and HEAD beside GET, which a "GET /path"
// pattern serves too (the server sends the headers without the body).
func header(methods []string) string {
	all := slices.Clone(methods)
	if slices.Contains(all, http.MethodGet) {
		all = append(all, http.MethodHead)
	}
	slices.Sort(all)
	return strings.Join(slices.Compact(all), ", ")
}
