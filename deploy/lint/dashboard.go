package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// dashboardDir is where the Grafana dashboards are, next to deploy/k8s: a
// kustomization of its own that deploy/k8s's lists as a resource.
const dashboardDir = "../grafana"

// dashboard is the part of a Grafana dashboard JSON model the lint reads.
type dashboard struct {
	Title         string `json:"title"`
	UID           string `json:"uid"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []dashboardPanel `json:"panels"`
}

type dashboardPanel struct {
	Type        string           `json:"type"`
	Title       string           `json:"title"`
	Description string           `json:"description"`
	Datasource  *grafanaRef      `json:"datasource"`
	Panels      []dashboardPanel `json:"panels"` // a collapsed row's
	Targets     []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *grafanaRef `json:"datasource"`
	} `json:"targets"`
}

type grafanaRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// grafanaKustomization is the part of deploy/grafana/kustomization.yaml
// the lint reads: the ConfigMap Grafana's sidecar loads the dashboards from.
type grafanaKustomization struct {
	APIVersion         string `json:"apiVersion"`
	Kind               string `json:"kind"`
	ConfigMapGenerator []struct {
		Name    string   `json:"name"`
		Files   []string `json:"files"`
		Options struct {
			Labels                map[string]string `json:"labels"`
			DisableNameSuffixHash bool              `json:"disableNameSuffixHash"`
		} `json:"options"`
	} `json:"configMapGenerator"`
}

// labelValues is a Grafana variable query label_values(SERIES, LABEL):
// only SERIES is PromQL.
var labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*\w+\s*\)\s*$`)

// checkDashboards holds deploy/grafana to the code and to deploy/k8s:
// every dashboard there is shipped in a ConfigMap Grafana's sidecar loads
// (label grafana_dashboard: "1"), which deploy/k8s's kustomization
// includes, and checkDashboard passes.
func (m *manifests) checkDashboards() []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	dir := filepath.Join(m.dir, dashboardDir)
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		return []error{fmt.Errorf("no Grafana dashboard in %s", dir)}
	}
	if m.kust != nil && !slices.Contains(m.kust.Resources, dashboardDir) {
		fail("kustomization.yaml does not list %s (the dashboards' ConfigMap)", dashboardDir)
	}
	shipped := map[string]bool{}
	kpath := filepath.Join(dir, "kustomization.yaml")
	if b, err := os.ReadFile(kpath); err != nil {
		fail("%v", err)
	} else {
		var k grafanaKustomization
		if err := yaml.UnmarshalStrict(b, &k); err != nil {
			fail("%s: %v", kpath, err)
		}
		for _, g := range k.ConfigMapGenerator {
			if g.Options.Labels["grafana_dashboard"] != "1" {
				fail("%s: ConfigMap %s needs the label grafana_dashboard: \"1\" (Grafana's sidecar loads only those)", kpath, g.Name)
			}
			for _, f := range g.Files {
				shipped[f] = true
			}
		}
	}
	known, err := m.registered()
	if err != nil {
		return append(errs, err)
	}
	for _, f := range files {
		if !shipped[filepath.Base(f)] {
			fail("%s: no ConfigMap in %s ships %s", kpath, dashboardDir, filepath.Base(f))
		}
		b, err := os.ReadFile(f)
		if err != nil {
			fail("%v", err)
			continue
		}
		errs = append(errs, checkDashboard(filepath.Base(f), b, known)...)
	}
	return errs
}

// checkDashboard: a title and uid; a datasource variable every panel and
// target queries through (so the dashboard works on any Grafana); on every
// panel a description saying what a bad value means; and every PromQL
// expression, in targets and variables, selecting only metrics in known.
func checkDashboard(name string, data []byte, known map[string]bool) []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(name+": "+format, a...)) }
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return []error{fmt.Errorf("%s: %v", name, err)}
	}
	if d.Title == "" || d.UID == "" {
		fail("needs a title and a uid (the sidecar and links find it by uid)")
	}
	if d.SchemaVersion < 36 {
		fail("schemaVersion %d: want 36 or later (datasource references by uid)", d.SchemaVersion)
	}
	metrics := func(where, expr string) {
		names := exprMetrics(expr)
		if len(names) == 0 {
			fail("%s selects no metric: %s", where, expr)
		}
		if bad := unknownMetrics(expr, known); len(bad) > 0 {
			fail("%s: %s not a metric pushpipe registers (nor %s): %s", where, strings.Join(bad, ", "), strings.Join(external, ", "), expr)
		}
		if by := groupDropped(expr); by != "" {
			fail("%s: %s drops the group label of the runner's lag or pending: add group, or two webhook receivers add up: %s", where, by, expr)
		}
	}
	dsVar := false
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			var q string
			_ = json.Unmarshal(v.Query, &q)
			dsVar = dsVar || (v.Name == "datasource" && q == "prometheus")
		case "query":
			var q struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				_ = json.Unmarshal(v.Query, &q)
			}
			expr := q.Query
			if sub := labelValues.FindStringSubmatch(expr); sub != nil {
				expr = sub[1]
			}
			metrics("variable "+v.Name, expr)
		}
	}
	if !dsVar {
		fail("no template variable datasource of type datasource, query prometheus")
	}
	const ds = "${datasource}"
	var walk func([]dashboardPanel)
	walk = func(panels []dashboardPanel) {
		for _, p := range panels {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			where := fmt.Sprintf("panel %q", p.Title)
			if p.Description == "" {
				fail("%s: needs a description saying what a bad value means and what to do", where)
			}
			if p.Datasource == nil || p.Datasource.UID != ds {
				fail("%s: datasource must be %s", where, ds)
			}
			if len(p.Targets) == 0 {
				fail("%s has no query", where)
			}
			for _, t := range p.Targets {
				if t.Datasource != nil && t.Datasource.UID != ds {
					fail("%s query %s: datasource must be %s", where, t.RefID, ds)
				}
				metrics(where+" query "+t.RefID, t.Expr)
			}
		}
	}
	walk(d.Panels)
	return errs
}
