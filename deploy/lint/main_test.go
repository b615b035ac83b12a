package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
)

// The manifests in deploy/k8s pass the lint as committed.
func TestManifests(t *testing.T) {
	m, errs := load("../k8s")
	if errs = append(errs, m.check()...); len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
}

// The lint covers every row of the stage table: a row the manifests do not
// deploy is reported, unless it is Optional; and gen.sh's input (-stages)
// lists it, with its stream keys as pipeline.Keys names them.
func TestEveryRowCovered(t *testing.T) {
	saved := pipeline.Stages
	t.Cleanup(func() { pipeline.Stages = saved })
	tests := []struct {
		name     string
		optional bool
		want     []string // errors the lint must report
	}{
		{"lintprobe", false, []string{"no Deployment pushpipe-lintprobe", "no Deployment pushpipe-lintprobe"}},
		{"lintprobe", true, nil},
	}
	for _, tt := range tests {
		pipeline.Stages = append(slices.Clip(saved), pipeline.StageDef{Name: tt.name, Stream: "lintprobes", Optional: tt.optional})
		m, errs := load("../k8s")
		errs = append(errs, m.check()...)
		var got []string
		for _, err := range errs {
			got = append(got, err.Error())
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("optional %v: lint says %q, want %q", tt.optional, got, tt.want)
		}

		var out bytes.Buffer
		if err := printStages(&out, []string{"-partitions", "2", "-prefix", "x"}); err != nil {
			t.Fatal(err)
		}
		line := "lintprobe no x:{p0}:lintprobes x:{p1}:lintprobes"
		if listed := slices.Contains(strings.Split(out.String(), "\n"), line); listed == tt.optional {
			t.Errorf("optional %v: -stages listed it: %v\n%s", tt.optional, listed, out.String())
		}
	}
}

// A stage with an express lane scales on it too: gen.sh's input lists its
// express keys before its bulk ones, and a ScaledObject without a trigger
// for each of them fails the lint.
func TestExpressLanesScale(t *testing.T) {
	var out bytes.Buffer
	if err := printStages(&out, []string{"-partitions", "2", "-prefix", "x"}); err != nil {
		t.Fatal(err)
	}
	line := "deliver yes x:{p0}:deliver-express x:{p1}:deliver-express x:{p0}:deliver x:{p1}:deliver"
	if !slices.Contains(strings.Split(out.String(), "\n"), line) {
		t.Errorf("-stages does not list %q:\n%s", line, out.String())
	}

	m, errs := load("../k8s")
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	for _, s := range m.scaled {
		if s.Spec.ScaleTargetRef.Name != "pushpipe-deliver" {
			continue
		}
		kept := s.Spec.Triggers[:0]
		for _, tr := range s.Spec.Triggers {
			if !strings.HasSuffix(tr.Metadata["stream"], ":deliver-express") {
				kept = append(kept, tr)
			}
		}
		s.Spec.Triggers = kept
	}
	var got []string
	for _, err := range m.check() {
		got = append(got, err.Error())
	}
	if want := "ScaledObject pushpipe-deliver: no trigger for partition key pp:{p0}:deliver-express"; !slices.Contains(got, want) {
		t.Errorf("lint without deliver's express triggers says %q, want it to say %q", got, want)
	}
}

// A dashboard may select only the metrics the code registers (or
// redis_exporter's): the committed dashboard with one expression replaced
// fails the lint exactly when that expression names another, wherever the
// name sits in the PromQL, and label names, strings, functions and Grafana
// variables are never taken for metrics.
func TestDashboardMetrics(t *testing.T) {
	known, err := registeredMetrics("../..")
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile("../grafana/pushpipe.json")
	if err != nil {
		t.Fatal(err)
	}
	if errs := checkDashboard("pushpipe.json", base, known); len(errs) > 0 {
		t.Fatalf("the committed dashboard fails: %v", errors.Join(errs...))
	}
	tests := []struct {
		name string
		expr string
		want string // in the one error the lint must report; "" for none
	}{
		{"registered counter", `sum by (provider, outcome) (rate(pushpipe_deliver_sends_total{namespace=~"$namespace"}[$__rate_interval]))`, ""},
		{"histogram buckets", `histogram_quantile(0.99, sum by (le) (rate(pushpipe_deliver_express_wait_seconds_bucket[5m])))`, ""},
		{"Go and process collectors", `rate(process_cpu_seconds_total[5m]) + on (instance) go_goroutines`, ""},
		{"redis_exporter", `redis_memory_used_bytes / redis_memory_max_bytes and redis_memory_max_bytes > 0`, ""},
		{"labels, strings and keywords", `sum without (partition) (label_replace(pushpipe_group_lag{stage=~"deliver|sum"}, "role", "$1", "stage", "(.*)")) > on (stage, group) group_left max by (stage, group) (pushpipe_group_pending offset 5m)`, ""},
		{"lag per group", `sum by (stage, group) (max by (stage, group, partition) (pushpipe_group_lag))`, ""},
		{"lag by stage alone", `sum by (stage) (max by (stage, group, partition) (pushpipe_group_lag))`, "by (stage) drops the group label"},
		{"pending by partition alone", `sum(max by (partition) (pushpipe_group_pending{stage="webhook"}))`, "by (partition) drops the group label"},
		{"unknown metric", `sum(rate(pushpipe_deliver_sent_total[5m]))`, "pushpipe_deliver_sent_total not a metric pushpipe registers"},
		{"unknown second series", `pushpipe_group_lag / on (stage) pushpipe_group_lagging`, "pushpipe_group_lagging not a metric"},
		{"histogram by its bare name", `histogram_quantile(0.99, rate(pushpipe_deliver_express_wait_seconds[5m]))`, "pushpipe_deliver_express_wait_seconds not a metric"},
		{"a metric the code does not export", `histogram_quantile(0.99, sum by (le) (rate(pushpipe_deliver_provider_seconds_bucket[5m])))`, "pushpipe_deliver_provider_seconds_bucket not a metric"},
		{"another exporter", `node_memory_MemAvailable_bytes`, "node_memory_MemAvailable_bytes not a metric"},
		{"no metric at all", `vector(1)`, "selects no metric"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := checkDashboard("pushpipe.json", withFirstExpr(t, base, tt.expr), known)
			switch {
			case tt.want == "" && len(errs) > 0:
				t.Errorf("lint says %v, want no error", errors.Join(errs...))
			case tt.want != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.want)):
				t.Errorf("lint says %v, want one error saying %q", errs, tt.want)
			}
		})
	}
}

// withFirstExpr is the dashboard with its first query's expression replaced.
func withFirstExpr(t *testing.T, dashboard []byte, expr string) []byte {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(dashboard, &d); err != nil {
		t.Fatal(err)
	}
	for _, p := range d["panels"].([]any) {
		if targets, ok := p.(map[string]any)["targets"].([]any); ok && len(targets) > 0 {
			targets[0].(map[string]any)["expr"] = expr
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatal("no panel with a query")
	return nil
}

// A pod mounting a Secret sets fsGroup: the kubelet writes the files as
// root, so the non-root process reads them only through its group.
func TestSecretVolumesReadable(t *testing.T) {
	tests := []struct {
		name    string
		fsGroup *int64
		want    string // the error the lint must report; "" for none
	}{
		{"fsGroup set", ptr(int64(65532)), ""},
		{"no fsGroup", nil, "Deployment pushpipe-deliver: mounts Secret pushpipe-providers but sets no fsGroup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, errs := load("../k8s")
			if len(errs) > 0 {
				t.Fatal(errors.Join(errs...))
			}
			m.deployments["pushpipe-deliver"].Spec.Template.Spec.SecurityContext.FSGroup = tt.fsGroup
			got := errorsOf(m.check())
			if tt.want == "" && len(got) > 0 || tt.want != "" && (len(got) != 1 || !strings.HasPrefix(got[0], tt.want)) {
				t.Errorf("lint says %q, want %q", got, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// errorsOf is errs as sorted strings.
func errorsOf(errs []error) []string {
	var out []string
	for _, err := range errs {
		out = append(out, err.Error())
	}
	slices.Sort(out)
	return out
}
