package api

import (
	"cmp"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

//go:generate go test -run TestAPIDocIsCurrent -update .

var update = flag.Bool("update", false, "rewrite docs/API.md from stages/api/openapi.json")

const apiDocPath = "../../docs/API.md"

// TestAPIDocIsCurrent: docs/API.md is written from the OpenAPI document
// (below its hand-written head, which holds the quickstart); `go generate
// ./stages/api` rewrites it.
func TestAPIDocIsCurrent(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	old, err := os.ReadFile(apiDocPath)
	if err != nil && !*update {
		t.Fatal(err)
	}
	head, _, found := strings.Cut(string(old), apiDocMarker)
	if !found && !*update {
		t.Fatalf("docs/API.md has no line %q: the reference is generated below it", strings.TrimSpace(apiDocMarker))
	}
	want := head + apiDocMarker + renderAPIDoc(doc)
	if *update {
		if err := os.WriteFile(apiDocPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if string(old) != want {
		t.Errorf("docs/API.md is not what stages/api/openapi.json says: run `go generate ./stages/api` and commit it")
	}
}

const apiDocMarker = "<!-- Generated from stages/api/openapi.json by `go generate ./stages/api`; edit that file, not below. -->\n"

// renderAPIDoc writes the document as Markdown: the operations by tag, in
// the document's tag order, then the schemas.
func renderAPIDoc(doc *openapi3.T) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("\n## Reference\n")
	type op struct {
		method, path string
		o            *openapi3.Operation
		item         *openapi3.PathItem
	}
	var ops []op
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		for method, o := range item.Operations() {
			ops = append(ops, op{method, path, o, item})
		}
	}
	methodRank := map[string]int{"GET": 0, "POST": 1, "PUT": 2, "PATCH": 3, "DELETE": 4}
	slices.SortFunc(ops, func(a, b op) int {
		if c := strings.Compare(a.path, b.path); c != 0 {
			return c
		}
		return methodRank[a.method] - methodRank[b.method]
	})
	for _, tag := range doc.Tags {
		p("\n### %s\n\n%s\n", tag.Name, tag.Description)
		for _, o := range ops {
			if !slices.Contains(o.o.Tags, tag.Name) {
				continue
			}
			p("\n#### `%s %s`\n\n%s.", o.method, o.path, o.o.Summary)
			if o.o.Description != "" {
				p(" %s", o.o.Description)
			}
			p("\n")
			params := append(slices.Clone(o.item.Parameters), o.o.Parameters...)
			if len(params) > 0 {
				p("\n| parameter | in | type | |\n|---|---|---|---|\n")
				for _, pr := range params {
					p("| `%s` | %s | %s | %s |\n", pr.Value.Name, pr.Value.In, schemaType(pr.Value.Schema), cell(cmp.Or(pr.Value.Description, pr.Value.Schema.Value.Description)))
				}
			}
			if rb := o.o.RequestBody; rb != nil {
				p("\nBody: %s\n", schemaType(rb.Value.Content.Get("application/json").Schema))
			}
			p("\n| status | meaning | body |\n|---|---|---|\n")
			codes := slices.Collect(func(yield func(string) bool) {
				for c := range o.o.Responses.Map() {
					if !yield(c) {
						return
					}
				}
			})
			slices.Sort(codes)
			for _, c := range codes {
				r := o.o.Responses.Value(c).Value
				body := "—"
				if mt := r.Content.Get("application/json"); mt != nil {
					body = schemaType(mt.Schema)
				}
				if _, ok := r.Headers["Retry-After"]; ok {
					body += ", `Retry-After`"
				}
				p("| %s | %s | %s |\n", c, cell(*r.Description), body)
			}
		}
	}
	p("\n## Schemas\n")
	for _, name := range componentNames(doc) {
		s := doc.Components.Schemas[name].Value
		p("\n### %s\n\n", name)
		if s.Description != "" {
			p("%s\n\n", s.Description)
		}
		if len(s.Properties) == 0 {
			p("%s%s\n", schemaType(openapi3.NewSchemaRef("", s)), constraints(s))
			continue
		}
		p("| field | type | required | |\n|---|---|---|---|\n")
		fields := slices.Sorted(func(yield func(string) bool) {
			for f := range s.Properties {
				if !yield(f) {
					return
				}
			}
		})
		for _, f := range fields {
			ref := s.Properties[f]
			req := ""
			if slices.Contains(s.Required, f) {
				req = "yes"
			}
			p("| `%s` | %s%s | %s | %s |\n", f, schemaType(ref), constraints(ref.Value), req, cell(ref.Value.Description))
		}
		if s.AdditionalProperties.Has != nil && !*s.AdditionalProperties.Has {
			p("\nOther fields are refused.\n")
		}
	}
	return b.String()
}

func componentNames(doc *openapi3.T) []string {
	return slices.Sorted(func(yield func(string) bool) {
		for n := range doc.Components.Schemas {
			if !yield(n) {
				return
			}
		}
	})
}

// schemaType names a schema: its component's name (a link) or its type.
func schemaType(ref *openapi3.SchemaRef) string {
	if ref == nil || ref.Value == nil {
		return "—"
	}
	if ref.Ref != "" {
		name := ref.Ref[strings.LastIndex(ref.Ref, "/")+1:]
		return "[" + name + "](#" + strings.ToLower(name) + ")"
	}
	s := ref.Value
	switch {
	case s.Type.Is("array"):
		return "array of " + schemaType(s.Items)
	case len(s.OneOf) > 0:
		var ts []string
		for _, o := range s.OneOf {
			ts = append(ts, schemaType(o))
		}
		return strings.Join(ts, " or ")
	case len(s.Enum) > 0:
		var vs []string
		for _, e := range s.Enum {
			vs = append(vs, fmt.Sprintf("`%v`", e))
		}
		return strings.Join(vs, " \\| ")
	case s.Type != nil && len(*s.Type) > 0 && s.Format != "" && s.Format != "int64":
		return (*s.Type)[0] + " (" + s.Format + ")"
	case s.Type != nil && len(*s.Type) > 0:
		return (*s.Type)[0]
	}
	return "any"
}

// constraints lists a schema's limits briefly.
func constraints(s *openapi3.Schema) string {
	var c []string
	if s.MinLength > 0 || s.MaxLength != nil {
		c = append(c, fmt.Sprintf("%d–%s characters", s.MinLength, ptrStr(s.MaxLength)))
	}
	if s.MinItems > 0 || s.MaxItems != nil {
		c = append(c, fmt.Sprintf("%d–%s items", s.MinItems, ptrStr(s.MaxItems)))
	}
	if s.MinProps > 0 || s.MaxProps != nil {
		c = append(c, fmt.Sprintf("%d–%s entries", s.MinProps, ptrStr(s.MaxProps)))
	}
	num := func(f *float64) string { return strconv.FormatFloat(*f, 'f', -1, 64) }
	switch {
	case s.Min != nil && s.Max != nil:
		c = append(c, num(s.Min)+"–"+num(s.Max))
	case s.Min != nil:
		c = append(c, "≥ "+num(s.Min))
	case s.Max != nil:
		c = append(c, "≤ "+num(s.Max))
	}
	if s.Pattern != "" {
		c = append(c, "`"+s.Pattern+"`")
	}
	if len(c) == 0 {
		return ""
	}
	return ", " + strings.Join(c, ", ")
}

func ptrStr(p *uint64) string {
	if p == nil {
		return ""
	}
	return strconv.FormatUint(*p, 10)
}

// cell makes text safe in a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ")
}
