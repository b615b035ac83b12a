package readme

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docRoute is `METHOD /v1/...` (the method optional) as the documents
// write a route in their prose; a literal path of a curl is run, not named.
var docRoute = regexp.MustCompile("(?:\\b(GET|POST|PUT|PATCH|DELETE|HEAD) |`)(/v1/[^\\s`),;]*)")

// apiRoutes are stages/api/openapi.json's paths, each as a pattern whose
// {param}s match any one segment, with the methods it takes.
func apiRoutes(t *testing.T) map[*regexp.Regexp][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "stages", "api", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	routes := map[*regexp.Regexp][]string{}
	param := regexp.MustCompile(`\\\{[^}/]+\\\}`)
	for path, ops := range doc.Paths {
		re := regexp.MustCompile("^" + param.ReplaceAllString(regexp.QuoteMeta(path), `[^/]+`) + "$")
		for m := range ops {
			routes[re] = append(routes[re], strings.ToUpper(m))
		}
	}
	return routes
}

// routeExists: path (a `*` at its end: any path under it) is a route of
// routes, taking method ("" for any).
func routeExists(routes map[*regexp.Regexp][]string, method, path string) bool {
	path, prefix := strings.CutSuffix(strings.TrimRight(path, ".:"), "*")
	path, _, _ = strings.Cut(path, "?")
	for re, methods := range routes {
		if method != "" && !slices.Contains(methods, method) && (method != "HEAD" || !slices.Contains(methods, "GET")) {
			continue
		}
		if re.MatchString(path) {
			return true
		}
		if prefix && strings.HasPrefix(strings.TrimPrefix(re.String(), "^"), regexp.QuoteMeta(path)) {
			return true
		}
	}
	return false
}

// TestDocsNameRoutesTheAPIServes: every route the day-one documents name
// in their prose (`DELETE /v1/users/{id}`, `/v1/messages/{id}`) is one
// stages/api/openapi.json lists, with that method; openapi_test.go holds
// the server to that document. (docs/API.md's reference part is written
// from it; its quickstart and the README are not.)
func TestDocsNameRoutesTheAPIServes(t *testing.T) {
	t.Parallel()
	routes := apiRoutes(t)
	seen := 0
	for _, doc := range []string{"README.md", "docs/API.md", "deploy/README.md", "deploy/CAPACITY.md"} {
		b, err := os.ReadFile(filepath.Join("..", "..", doc))
		if err != nil {
			t.Fatal(err)
		}
		for n, line := range strings.Split(string(b), "\n") {
			for _, m := range docRoute.FindAllStringSubmatch(line, -1) {
				seen++
				if !routeExists(routes, m[1], m[2]) {
					t.Errorf("%s:%d: %s is no route of stages/api/openapi.json", doc, n+1, strings.TrimSpace(m[1]+" "+m[2]))
				}
			}
		}
	}
	if seen < 20 {
		t.Errorf("found %d routes named in the documents, want over 20: is docRoute still reading them?", seen)
	}
}

func TestRouteExists(t *testing.T) {
	t.Parallel()
	routes := apiRoutes(t)
	tests := []struct {
		method, path string
		want         bool
	}{
		{"DELETE", "/v1/users/{id}", true},
		{"GET", "/v1/campaigns/{id}", true},
		{"HEAD", "/v1/campaigns/{id}", true},
		{"", "/v1/devices*", true},
		{"PATCH", "/v1/campaigns/{id}/cancel", false},
		{"DELETE", "/v1/devices", false},
		{"GET", "/v1/campaign/{id}", false},
		{"GET", "/v1/campaigns?state=running", true},
	}
	for _, tt := range tests {
		if got := routeExists(routes, tt.method, tt.path); got != tt.want {
			t.Errorf("routeExists(%s %s) = %t, want %t", tt.method, tt.path, got, tt.want)
		}
	}
}
