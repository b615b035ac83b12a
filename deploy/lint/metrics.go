package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushpipe/pushpipe/pipeline"
)

// external are the series of other exporters that alerts.yaml and the
// dashboard may name: redis_exporter's, one per Redis master. Everything
// else an expression names must be a series pushpipe exports.
var external = []string{"redis_memory_used_bytes", "redis_memory_max_bytes"}

// optsTypes are the client_golang option literals a metric is declared with
// (GaugeFunc and CounterFunc take them too); the value is its series suffixes.
var optsTypes = map[string][]string{
	"CounterOpts":   {""},
	"GaugeOpts":     {""},
	"HistogramOpts": {"_bucket", "_sum", "_count"},
	"SummaryOpts":   {"", "_sum", "_count"},
}

// registeredMetrics are the series pushpipe's processes export, read off
// the code rather than listed here, so an expression cannot name a metric
// the code renamed or never had: every prometheus.*Opts literal in the
// main module's non-test Go source under root (its Namespace, Subsystem and
// Name, which must be string literals; a histogram's series are its
// _bucket, _sum and _count, never the bare name), and the Go and process
// collectors' series, gathered from pipeline.NewRegistry, the registry
// every process starts from. bench/ is left out: what it might register
// would be the benchmarks', not a deployment's.
func registeredMetrics(root string) (map[string]bool, error) {
	known := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if rel, _ := filepath.Rel(root, path); rel == "deploy" || rel == "bench" || d.Name() == "testdata" ||
				(strings.HasPrefix(d.Name(), ".") && path != root) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok || err != nil {
				return err == nil
			}
			sel, ok := lit.Type.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, ok := sel.X.(*ast.Ident)
			suffixes, isOpts := optsTypes[sel.Sel.Name]
			if !ok || pkg.Name != "prometheus" || !isOpts {
				return true
			}
			var parts [3]string // namespace, subsystem, name
			for _, e := range lit.Elts {
				kv, ok := e.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				key, _ := kv.Key.(*ast.Ident)
				if key == nil {
					continue
				}
				i := slices.Index([]string{"Namespace", "Subsystem", "Name"}, key.Name)
				if i < 0 {
					continue
				}
				v, ok := kv.Value.(*ast.BasicLit)
				if ok && v.Kind == token.STRING {
					parts[i], _ = strconv.Unquote(v.Value)
				} else {
					err = fmt.Errorf("%s: prometheus.%s %s is not a string literal: deploy/lint reads metric names off the code",
						fset.Position(kv.Pos()), sel.Sel.Name, key.Name)
					return false
				}
			}
			name := prometheus.BuildFQName(parts[0], parts[1], parts[2])
			if name == "" {
				err = fmt.Errorf("%s: prometheus.%s without a Name", fset.Position(lit.Pos()), sel.Sel.Name)
				return false
			}
			for _, s := range suffixes {
				known[name+s] = true
			}
			return true
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	if !known["pushpipe_group_lag"] {
		return nil, fmt.Errorf("no pushpipe metrics found in the Go source under %s", root)
	}
	// The collectors' families always have samples, so Gather lists them
	// all (a partial error, such as a /proc field missing, still returns
	// the families gathered).
	families, _ := pipeline.NewRegistry().Gather()
	for _, f := range families {
		known[f.GetName()] = true
		switch f.GetType().String() {
		case "SUMMARY":
			known[f.GetName()+"_sum"], known[f.GetName()+"_count"] = true, true
		case "HISTOGRAM":
			known[f.GetName()+"_bucket"], known[f.GetName()+"_sum"], known[f.GetName()+"_count"] = true, true, true
		}
	}
	for _, name := range external {
		known[name] = true
	}
	return known, nil
}

// registered is registeredMetrics of the repository deploy/k8s is in, read
// once.
func (m *manifests) registered() (map[string]bool, error) {
	if m.known == nil && m.knownErr == nil {
		m.known, m.knownErr = registeredMetrics(filepath.Join(m.dir, "..", ".."))
	}
	return m.known, m.knownErr
}

var (
	// grafanaVar is a Grafana template variable: $name, ${name} or
	// ${name:format}, [[name]].
	grafanaVar = regexp.MustCompile(`\$\{[^}]*\}|\$\w+|\[\[\w+\]\]`)
	// promqlLabelLists are the PromQL keywords followed by a list of label
	// names in parentheses.
	promqlLabelLists = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}
	// promqlWords are the PromQL keywords that are neither functions nor
	// metrics: operators, modifiers and aggregations (which the label list
	// of by or without may separate from their parentheses).
	promqlWords = []string{"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end",
		"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
		"quantile", "limitk", "limit_ratio"}
)

// exprMetrics are the metric names a PromQL expression selects: the
// identifiers outside strings, label matchers ({...}), ranges ([...]) and
// label lists (by (...) and the like) that are not functions, aggregations
// or keywords. Grafana's variables are removed first. It is a scanner, not
// a parser: enough for the expressions of alerts.yaml and the dashboard.
func exprMetrics(expr string) []string {
	s := grafanaVar.ReplaceAllString(expr, "1")
	var names []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(s, i)
		case c == '{':
			i = skipTo(s, i, '}')
		case c == '[':
			i = skipTo(s, i, ']')
		case c == '#':
			i = skipTo(s, i, '\n')
		case isIdentStart(c):
			j := i
			for j < len(s) && (isIdentStart(s[j]) || (s[j] >= '0' && s[j] <= '9')) {
				j++
			}
			word := s[i:j]
			k := j
			for k < len(s) && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n' || s[k] == '\r') {
				k++
			}
			switch {
			case slices.Contains(promqlLabelLists, strings.ToLower(word)):
				if k < len(s) && s[k] == '(' {
					j = skipTo(s, k, ')')
				}
			case k < len(s) && s[k] == '(': // a function or an aggregation
			case slices.Contains(promqlWords, strings.ToLower(word)):
			default:
				names = append(names, word)
			}
			i = j
		case c >= '0' && c <= '9' || c == '.':
			// A number or a duration (5m, 1e3, 0x1f): never a name.
			for i < len(s) && (isIdentStart(s[i]) || s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
				i++
			}
		default:
			i++
		}
	}
	return names
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// skipString returns the index after the string literal starting at s[i].
func skipString(s string, i int) int {
	q := s[i]
	for i++; i < len(s); i++ {
		if s[i] == '\\' && q != '`' {
			i++
		} else if s[i] == q {
			return i + 1
		}
	}
	return i
}

// skipTo returns the index after the first end at or after s[i], past
// string literals (a label value may hold any character).
func skipTo(s string, i int, end byte) int {
	for i++; i < len(s); {
		switch s[i] {
		case end:
			return i + 1
		case '"', '\'', '`':
			i = skipString(s, i)
		default:
			i++
		}
	}
	return i
}

// unknownMetrics are the names expr selects that are not in known.
func unknownMetrics(expr string, known map[string]bool) []string {
	var out []string
	for _, name := range exprMetrics(expr) {
		if !known[name] && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// groupGauges are the runner's per-group gauges: summed or maxed by stage
// alone, two webhook receivers (two groups on results) were one line, one
// receiver's backlog hidden behind the other's, or added up to an alert for
// neither.
var groupGauges = regexp.MustCompile(`\bpushpipe_group_(lag|pending)\b`)

var byClause = regexp.MustCompile(`\bby\s*\(([^)]*)\)`)

// groupDropped says what an expression over groupGauges aggregates by
// without the group label ("" when it keeps it, or selects no such gauge).
func groupDropped(expr string) string {
	if !groupGauges.MatchString(expr) {
		return ""
	}
	for _, m := range byClause.FindAllStringSubmatch(expr, -1) {
		if !slices.Contains(strings.Fields(strings.ReplaceAll(m[1], ",", " ")), "group") {
			return m[0]
		}
	}
	return ""
}
