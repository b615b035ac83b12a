package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

// The webhook receivers are checked as the stages are, and for what the
// webhook needs of its own: /readyz for readiness alone (a force-retired
// group answers 503 there: the pod must go 0/1, not restart and POST the
// retention window again), its URL and signing secrets from its Secret, a
// name that follows its group, Redis reachable, and no default apply.
func TestWebhookManifest(t *testing.T) {
	const d = "Deployment pushpipe-webhook: "
	tests := []struct {
		name   string
		change func(m *manifests, c *corev1.Container, pod *corev1.PodSpec)
		want   []string // every error the lint must report, sorted
	}{
		{"as generated", func(*manifests, *corev1.Container, *corev1.PodSpec) {}, nil},
		{"no readiness probe", func(_ *manifests, c *corev1.Container, _ *corev1.PodSpec) { c.ReadinessProbe = nil },
			[]string{d + "readinessProbe must GET /readyz"}},
		{"readiness on /healthz", func(_ *manifests, c *corev1.Container, _ *corev1.PodSpec) { c.ReadinessProbe.HTTPGet.Path = "/healthz" },
			[]string{d + "readinessProbe must GET /readyz"}},
		{"liveness on /readyz", func(_ *manifests, c *corev1.Container, _ *corev1.PodSpec) { c.LivenessProbe.HTTPGet.Path = "/readyz" },
			[]string{d + "livenessProbe GETs /readyz: a force-retired group answers 503 there, and a restart would create the group anew and POST the retention window again",
				d + "livenessProbe must GET /healthz"}},
		{"startup probe on /readyz", func(_ *manifests, c *corev1.Container, _ *corev1.PodSpec) {
			c.StartupProbe = c.ReadinessProbe.DeepCopy()
		}, []string{d + "startupProbe GETs /readyz: a force-retired group answers 503 there, and a restart would create the group anew and POST the retention window again"}},
		{"URL in the manifest", func(_ *manifests, c *corev1.Container, _ *corev1.PodSpec) {
			c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == webhookURLEnv })
			c.Args = append(c.Args, "--url", "https://hooks.example.com/pushpipe")
		}, []string{d + "gives --url: the URL may hold credentials, give it by PUSHPIPE_WEBHOOK_URL from Secret pushpipe-webhook",
			d + "must take PUSHPIPE_WEBHOOK_URL from key url of Secret pushpipe-webhook"}},
		{"secret file not mounted", func(_ *manifests, c *corev1.Container, _ *corev1.PodSpec) {
			c.Args[slices.Index(c.Args, "--secret-file")+1] = "/etc/pushpipe/secrets"
		}, []string{d + `--secret-file "/etc/pushpipe/secrets" must be key secrets of Secret pushpipe-webhook, mounted`}},
		{"another group under the default name", func(_ *manifests, c *corev1.Container, _ *corev1.PodSpec) {
			c.Args[slices.Index(c.Args, "--group")+1] = "analytics"
		}, []string{d + "--group analytics: want it named pushpipe-webhook-analytics, as its Secret"}},
		{"cut off from Redis", func(m *manifests, _ *corev1.Container, pod *corev1.PodSpec) {
			m.deployments["pushpipe-webhook"].Spec.Template.Labels["app.kubernetes.io/part-of"] = "hooks"
		}, []string{d + "no NetworkPolicy lets its pods reach Redis on 6379"}},
		{"egress restricted", func(m *manifests, _ *corev1.Container, _ *corev1.PodSpec) {
			m.policies = append(m.policies, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "egress"},
				Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}}})
		}, []string{d + "NetworkPolicy egress restricts its egress: the lint cannot tell it still reaches the receiver (and Redis, and DNS)"}},
		{"in the default apply", func(m *manifests, _ *corev1.Container, _ *corev1.PodSpec) {
			m.kust.Resources = append(m.kust.Resources, "webhook")
		}, []string{"kustomization.yaml includes webhook: the default apply would start what runs only once an operator set it up (deploy/README.md)"}},
		{"gone", func(m *manifests, _ *corev1.Container, _ *corev1.PodSpec) {
			delete(m.deployments, "pushpipe-webhook")
		}, []string{"no webhook receiver Deployment (webhook/webhook.yaml, gen.sh RECEIVERS)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, errs := load("../k8s")
			if len(errs) > 0 {
				t.Fatal(errors.Join(errs...))
			}
			w := m.deployments["pushpipe-webhook"]
			if w == nil {
				t.Fatal("no Deployment pushpipe-webhook in ../k8s/webhook")
			}
			pod := &w.Spec.Template.Spec
			tt.change(m, &pod.Containers[0], pod)
			if got := errorsOf(m.check()); !slices.Equal(got, tt.want) {
				t.Errorf("lint says\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// A second receiver is a line in gen.sh's RECEIVERS, as deploy/README.md
// says: gen.sh makes it a Deployment of its own name, group, Secret,
// filter and start, which passes the lint beside the first.
func TestSecondReceiver(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command("../k8s/gen.sh")
	cmd.Env = append(os.Environ(), "OUT="+out, "RECEIVERS=webhook 2000 - 250ms oldest\nanalytics 500 outcome=failed,invalid 250ms now")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen.sh: %v\n%s", err, b)
	}
	m, errs := load("../k8s")
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	for name, d := range m.deployments {
		if isWebhook(d) {
			delete(m.deployments, name)
		}
	}
	b, err := os.ReadFile(out + "/webhook/webhook.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range splitDocs(b) {
		if err := m.decode("webhook", doc); err != nil {
			t.Fatal(err)
		}
	}
	if errs := m.check(); len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	tests := []struct {
		name string
		args []string // what its args hold
		uses string   // its Secret
	}{
		{"pushpipe-webhook", []string{"--group", "webhook", "--from", "oldest", "--rate", "2000"}, "pushpipe-webhook"},
		{"pushpipe-webhook-analytics", []string{"--group", "analytics", "--from", "now", "--rate", "500", "--linger", "250ms", "--filter", "outcome=failed,invalid"}, "pushpipe-webhook-analytics"},
	}
	for _, tt := range tests {
		d := m.deployments[tt.name]
		if d == nil {
			t.Errorf("no Deployment %s", tt.name)
			continue
		}
		args := d.Spec.Template.Spec.Containers[0].Args
		if !strings.Contains(strings.Join(args, " ")+" ", strings.Join(tt.args, " ")+" ") {
			t.Errorf("%s args %q, want them to hold %q", tt.name, args, tt.args)
		}
		if got := secretsOf(&d.Spec.Template.Spec); !slices.Contains(got, tt.uses) {
			t.Errorf("%s reads Secrets %q, want %s", tt.name, got, tt.uses)
		}
	}
}

// The ConfigMap's partition count is one every process accepts: from 1 to
// pipeline.MaxPartitions.
func TestPartitionsInRange(t *testing.T) {
	tests := []struct {
		give string
		bad  bool
	}{
		{"16", false},
		{"1024", false},
		{"1025", true},
		{"0", true},
		{"sixteen", true},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			m, errs := load("../k8s")
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			m.configMaps["pushpipe-config"].Data["PUSHPIPE_PARTITIONS"] = tt.give
			said := false
			for _, err := range m.check() {
				said = said || strings.Contains(err.Error(), "PUSHPIPE_PARTITIONS")
			}
			if said != tt.bad {
				t.Errorf("PUSHPIPE_PARTITIONS %s: reported %v, want %v", tt.give, said, tt.bad)
			}
		})
	}
}
