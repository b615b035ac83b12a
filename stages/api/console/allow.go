package console

import (
	"net/http"
	"slices"
	"strings"
)

// allowIndex knows the methods of each console path, so that a page asked
// with a method it does not take (a GET of /ui/signout typed in the address
// bar, a PUT from a script) is a 405 whose Allow header and page name them,
// as RFC 9110 §15.5.6 and net/http's ServeMux have it; it was the 404 of a
// page that does not exist.
type allowIndex struct {
	mux     *http.ServeMux      // each pattern's path, without its method
	methods map[string][]string // path pattern → its methods
}

// newAllowIndex indexes "METHOD /path" patterns.
func newAllowIndex(patterns []string) allowIndex {
	x := allowIndex{mux: http.NewServeMux(), methods: map[string][]string{}}
	for _, p := range patterns {
		method, path, _ := strings.Cut(p, " ")
		if _, seen := x.methods[path]; !seen {
			x.mux.Handle(path, http.NotFoundHandler()) // never served: only matched
		}
		x.methods[path] = append(x.methods[path], method)
	}
	return x
}

// allow is the Allow header of r's path ("": no such page), written as
// the mux writes it: sorted, HEAD beside GET, which a "GET /path" pattern
// serves too.
func (x allowIndex) allow(r *http.Request) string {
	_, pattern := x.mux.Handler(r)
	methods := slices.Clone(x.methods[pattern])
	if slices.Contains(methods, http.MethodGet) {
		methods = append(methods, http.MethodHead)
	}
	slices.Sort(methods)
	return strings.Join(slices.Compact(methods), ", ")
}
