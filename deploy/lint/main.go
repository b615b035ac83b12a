// Command lint checks the Kubernetes manifests in deploy/k8s without a
// cluster or network: every document is decoded strictly (unknown or
// mistyped fields fail) into the official k8s.io/api types, or into the
// subset of KEDA's ScaledObject we use, and then checked for what pushpipe
// relies on: probes on /healthz and /readyz, a grace period longer than the
// shutdown timeout, one KEDA lag trigger per partition of the right stream
// and group, each Secret only where its role needs it (roles.go), the
// alerts and network policies deploy/README.md names, the opt-in webhook
// receivers of webhook/ (webhook.go: /readyz for readiness alone, URL and
// signing secrets from their Secret, never in the default kustomization),
// and the README's tables against the manifests (docs.go). Alert expressions and the Grafana
// dashboards in deploy/grafana (dashboard.go) may name only the metrics the
// code registers, read off its source (metrics.go). The stages, their streams and
// which need PostgreSQL come from pipeline.Stages, the one stage table. It
// is its own module so the pushpipe module does not depend on k8s.io/api.
//
//	cd deploy/lint && go run . ../k8s
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/pushpipe/pushpipe/pipeline"
)

// customHead is the type and metadata of a custom resource (KEDA's,
// Prometheus Operator's), which k8s.io/api does not define.
type customHead struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
}

// scaledObject is the part of keda.sh/v1alpha1 ScaledObject the manifests use.
type scaledObject struct {
	customHead
	Spec struct {
		ScaleTargetRef struct {
			Name string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount *int32 `json:"minReplicaCount"`
		MaxReplicaCount *int32 `json:"maxReplicaCount"`
		PollingInterval *int32 `json:"pollingInterval"`
		CooldownPeriod  *int32 `json:"cooldownPeriod"`
		Triggers        []struct {
			Type              string            `json:"type"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
			} `json:"authenticationRef"`
		} `json:"triggers"`
	} `json:"spec"`
}

type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
}

// kedaStreamsKeys are the redis-cluster-streams trigger settings we allow.
var kedaStreamsKeys = []string{"addressesFromEnv", "stream", "consumerGroup", "lagCount", "activationLagCount"}

type manifests struct {
	dir         string
	deployments map[string]*appsv1.Deployment
	jobs        map[string]*corev1.PodSpec // Jobs and CronJobs by name
	secrets     map[string]*corev1.Secret
	rules       *prometheusRule
	policies    []*networkingv1.NetworkPolicy
	triggerAuth []string // TriggerAuthentication names
	scaled      []*scaledObject
	configMaps  map[string]*corev1.ConfigMap
	services    []*corev1.Service
	files       []string                  // paths under dir: stages.yaml, webhook/webhook.yaml
	kust        *kustomization            // dir's own, what kubectl apply -k applies by default
	kusts       map[string]*kustomization // by directory under dir: "." and the optInDirs
	known       map[string]bool           // registeredMetrics, read once
	knownErr    error
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-stages" {
		if err := printStages(os.Stdout, os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "lint -stages:", err)
			os.Exit(2)
		}
		return
	}
	if len(os.Args) > 2 && os.Args[1] == "-rules" {
		if err := printRules(os.Stdout, os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "lint -rules:", err)
			os.Exit(2)
		}
		return
	}
	dir := "../k8s"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	m, errs := load(dir)
	errs = append(errs, m.check()...)
	if len(errs) > 0 {
		for _, err := range errs {
			fmt.Fprintln(os.Stderr, "lint:", err)
		}
		os.Exit(1)
	}
	fmt.Printf("lint: %d files, %d deployments, %d scaled objects: ok\n", len(m.files), len(m.deployments), len(m.scaled))
}

// optInDirs are the kustomizations under dir an operator applies on
// purpose, after setting them up: the webhook receivers, which need a URL
// and a signing secret. Their manifests are checked as the others are, and
// dir's own kustomization must not include them.
var optInDirs = []string{"webhook"}

func load(dir string) (*manifests, []error) {
	m := &manifests{dir: dir, deployments: map[string]*appsv1.Deployment{}, configMaps: map[string]*corev1.ConfigMap{},
		jobs: map[string]*corev1.PodSpec{}, secrets: map[string]*corev1.Secret{}, kusts: map[string]*kustomization{}}
	var errs []error
	for _, sub := range append([]string{"."}, optInDirs...) {
		files, _ := filepath.Glob(filepath.Join(dir, sub, "*.yaml"))
		if len(files) == 0 {
			errs = append(errs, fmt.Errorf("no manifests in %s", filepath.Join(dir, sub)))
			continue
		}
		for _, f := range files {
			rel := filepath.Join(sub, filepath.Base(f))
			m.files = append(m.files, rel)
			data, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for i, doc := range splitDocs(data) {
				if err := m.decode(sub, doc); err != nil {
					errs = append(errs, fmt.Errorf("%s document %d: %w", rel, i+1, err))
				}
			}
		}
	}
	m.kust = m.kusts["."]
	return m, errs
}

// splitDocs splits a YAML stream on "---" lines and drops empty documents.
func splitDocs(data []byte) [][]byte {
	var out [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		body := regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(d, "")
		if strings.TrimSpace(body) != "" {
			out = append(out, []byte(d))
		}
	}
	return out
}

// decode files doc, a document of a file in the directory sub of m.dir.
func (m *manifests) decode(sub string, doc []byte) error {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return err
	}
	strict := func(into any) error { return yaml.UnmarshalStrict(doc, into) }
	switch head.APIVersion + " " + head.Kind {
	case "v1 Namespace":
		return strict(&corev1.Namespace{})
	case "v1 ConfigMap":
		var cm corev1.ConfigMap
		err := strict(&cm)
		m.configMaps[cm.Name] = &cm
		return err
	case "v1 Secret":
		var sec corev1.Secret
		err := strict(&sec)
		m.secrets[sec.Name] = &sec
		return err
	case "v1 Service":
		var s corev1.Service
		err := strict(&s)
		m.services = append(m.services, &s)
		return err
	case "apps/v1 Deployment":
		var d appsv1.Deployment
		err := strict(&d)
		m.deployments[d.Name] = &d
		return err
	case "policy/v1 PodDisruptionBudget":
		return strict(&policyv1.PodDisruptionBudget{})
	case "batch/v1 Job":
		var j batchv1.Job
		err := strict(&j)
		m.jobs[j.Name] = &j.Spec.Template.Spec
		return err
	case "batch/v1 CronJob":
		var j batchv1.CronJob
		err := strict(&j)
		m.jobs[j.Name] = &j.Spec.JobTemplate.Spec.Template.Spec
		return err
	case "networking.k8s.io/v1 NetworkPolicy":
		var np networkingv1.NetworkPolicy
		err := strict(&np)
		m.policies = append(m.policies, &np)
		return err
	case "monitoring.coreos.com/v1 PrometheusRule":
		var r prometheusRule
		err := strict(&r)
		m.rules = &r
		return err
	case "keda.sh/v1alpha1 TriggerAuthentication":
		var a triggerAuthentication
		err := strict(&a)
		m.triggerAuth = append(m.triggerAuth, a.Metadata.Name)
		return err
	case "keda.sh/v1alpha1 ScaledObject":
		var s scaledObject
		err := strict(&s)
		m.scaled = append(m.scaled, &s)
		return err
	case "kustomize.config.k8s.io/v1beta1 Kustomization":
		var k kustomization
		err := strict(&k)
		m.kusts[sub] = &k
		return err
	}
	return fmt.Errorf("unexpected kind %q %q", head.APIVersion, head.Kind)
}

func (m *manifests) check() []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	partitions, prefix := pipeline.DefaultPartitions, ""
	if cm := m.configMaps["pushpipe-config"]; cm == nil {
		fail("no ConfigMap pushpipe-config")
	} else if n, err := strconv.Atoi(cm.Data["PUSHPIPE_PARTITIONS"]); err != nil || n <= 0 || n > pipeline.MaxPartitions {
		fail("pushpipe-config: PUSHPIPE_PARTITIONS %q is not a number from 1 to %d", cm.Data["PUSHPIPE_PARTITIONS"], pipeline.MaxPartitions)
	} else {
		partitions, prefix = n, cm.Data["PUSHPIPE_PREFIX"]
	}
	keys := pipeline.NewKeys(prefix, partitions)

	stages := map[string][]string{} // stage → the streams it reads, express lane first
	for _, s := range pipeline.Stages {
		stages[s.Name] = s.Inputs()
		// An Optional stage runs only where an operator configures it
		// (the webhook's URL and secret): checked when deployed.
		if !s.Optional && m.deployments["pushpipe-"+s.Name] == nil {
			fail("no Deployment pushpipe-%s", s.Name)
		}
	}
	if m.deployments["pushpipe-api"] == nil {
		fail("no Deployment pushpipe-api")
	}
	for name, d := range m.deployments {
		for _, err := range checkDeployment(d) {
			fail("Deployment %s: %v", name, err)
		}
	}

	apiService := false
	for _, s := range m.services {
		if s.Spec.Selector["app.kubernetes.io/name"] == "pushpipe-api" {
			apiService = true
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.String() == "ops" || p.Port == 9090 {
				fail("Service %s exposes the unauthenticated ops port", s.Name)
			}
		}
	}
	if !apiService {
		fail("no Service selecting pushpipe-api")
	}

	scaled := map[string]bool{}
	for _, s := range m.scaled {
		target := s.Spec.ScaleTargetRef.Name
		stage := strings.TrimPrefix(target, "pushpipe-")
		inputs, ok := stages[stage]
		if !ok || m.deployments[target] == nil {
			fail("ScaledObject %s targets %q, not a stage Deployment", s.Metadata.Name, target)
			continue
		}
		scaled[stage] = true
		if s.Spec.MinReplicaCount == nil || *s.Spec.MinReplicaCount < 1 {
			fail("ScaledObject %s: minReplicaCount must be ≥ 1 (a cold start costs the first-send target)", s.Metadata.Name)
		}
		if s.Spec.MaxReplicaCount == nil || (s.Spec.MinReplicaCount != nil && *s.Spec.MaxReplicaCount < *s.Spec.MinReplicaCount) {
			fail("ScaledObject %s: maxReplicaCount missing or below minReplicaCount", s.Metadata.Name)
		}
		seen := map[string]bool{}
		for i, t := range s.Spec.Triggers {
			if t.Type != "redis-cluster-streams" {
				fail("ScaledObject %s trigger %d: type %q, want redis-cluster-streams", s.Metadata.Name, i, t.Type)
			}
			for k := range t.Metadata {
				if !slices.Contains(kedaStreamsKeys, k) {
					fail("ScaledObject %s trigger %d: unknown setting %q", s.Metadata.Name, i, k)
				}
			}
			if t.Metadata["consumerGroup"] != stage {
				fail("ScaledObject %s trigger %d: consumerGroup %q, want %q", s.Metadata.Name, i, t.Metadata["consumerGroup"], stage)
			}
			if n, err := strconv.Atoi(t.Metadata["lagCount"]); err != nil || n <= 0 {
				fail("ScaledObject %s trigger %d: lagCount %q (the lag metric; pendingEntriesCount under-reports a batching consumer)", s.Metadata.Name, i, t.Metadata["lagCount"])
			}
			if t.Metadata["addressesFromEnv"] != "PUSHPIPE_REDIS_ADDR" {
				fail("ScaledObject %s trigger %d: addressesFromEnv must be PUSHPIPE_REDIS_ADDR", s.Metadata.Name, i)
			}
			if t.AuthenticationRef == nil || !slices.Contains(m.triggerAuth, t.AuthenticationRef.Name) {
				fail("ScaledObject %s trigger %d: authenticationRef must name a TriggerAuthentication (KEDA signs in to Redis like the processes)", s.Metadata.Name, i)
			}
			seen[t.Metadata["stream"]] = true
		}
		// A lane's backlog scales the stage as well: messages waiting in
		// an express stream need deliverers as much as a campaign does.
		for _, stream := range inputs {
			for _, key := range keys.Streams(stream) {
				if !seen[key] {
					fail("ScaledObject %s: no trigger for partition key %s", s.Metadata.Name, key)
				}
			}
		}
		if len(seen) != partitions*len(inputs) {
			fail("ScaledObject %s: %d distinct streams, want %d (%d partitions of %d streams)", s.Metadata.Name, len(seen), partitions*len(inputs), partitions, len(inputs))
		}
	}
	for _, s := range pipeline.Stages {
		// An Optional stage (the webhook) has none: gen.sh, RECEIVERS.
		if !s.Optional && !scaled[s.Name] && m.deployments["pushpipe-"+s.Name] != nil {
			fail("no ScaledObject for stage %s", s.Name)
		}
	}

	errs = append(errs, m.checkWebhooks()...)
	errs = append(errs, m.checkRoles()...)
	errs = append(errs, m.checkAlertsAndPolicies()...)
	errs = append(errs, m.checkDocs()...)
	errs = append(errs, m.checkDashboards()...)

	for _, sub := range append([]string{"."}, optInDirs...) {
		name := filepath.Join(sub, "kustomization.yaml")
		k := m.kusts[sub]
		if k == nil {
			fail("no %s", name)
			continue
		}
		for _, f := range m.files {
			if filepath.Dir(f) == sub && filepath.Base(f) != "kustomization.yaml" && !slices.Contains(k.Resources, filepath.Base(f)) {
				fail("%s does not list %s", name, f)
			}
		}
		for _, r := range k.Resources {
			// A directory is a kustomization of its own (deploy/grafana).
			if _, err := os.Stat(filepath.Join(m.dir, sub, r, "kustomization.yaml")); !slices.Contains(m.files, filepath.Join(sub, r)) && err != nil {
				fail("%s lists missing %s", name, r)
			}
			if sub == "." && slices.Contains(optInDirs, filepath.Clean(r)) {
				fail("%s includes %s: the default apply would start what runs only once an operator set it up (deploy/README.md)", name, r)
			}
		}
	}
	return errs
}

// checkDeployment: probes on the ops port, grace period past the shutdown
// timeout, config from the shared ConfigMap, no root.
func checkDeployment(d *appsv1.Deployment) []error {
	var errs []error
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		return []error{fmt.Errorf("want one container, have %d", len(pod.Containers))}
	}
	c := pod.Containers[0]
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		errs = append(errs, errors.New("readinessProbe must GET /readyz"))
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		errs = append(errs, errors.New("livenessProbe must GET /healthz"))
	}
	opsPort := false
	for _, p := range c.Ports {
		if p.Name == "ops" && p.ContainerPort == 9090 {
			opsPort = true
		}
	}
	if !opsPort || !slices.Contains(c.Args, ":9090") {
		errs = append(errs, errors.New("must serve --http :9090 as port ops"))
	}
	shutdown := 10 * time.Second // StageFlags default
	if i := slices.Index(c.Args, "--shutdown-timeout"); i >= 0 && i+1 < len(c.Args) {
		var err error
		if shutdown, err = time.ParseDuration(c.Args[i+1]); err != nil {
			errs = append(errs, fmt.Errorf("--shutdown-timeout %q: %v", c.Args[i+1], err))
		}
	}
	if c.Args[0] == "api" {
		shutdown = 5 * time.Second // pipeline.Serve's drain
	}
	grace := 30 * time.Second
	if pod.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	}
	if grace <= shutdown {
		errs = append(errs, fmt.Errorf("terminationGracePeriodSeconds %v must exceed the shutdown timeout %v", grace, shutdown))
	}
	fromConfig := false
	for _, e := range c.EnvFrom {
		if e.ConfigMapRef != nil && e.ConfigMapRef.Name == "pushpipe-config" {
			fromConfig = true
		}
	}
	if !fromConfig {
		errs = append(errs, errors.New("must take its environment from ConfigMap pushpipe-config"))
	}
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		errs = append(errs, errors.New("must set runAsNonRoot"))
	}
	for _, v := range pod.Volumes {
		// The kubelet writes a Secret's files as root: a process of
		// another user reads them through the pod's fsGroup alone.
		if v.Secret != nil && (pod.SecurityContext == nil || pod.SecurityContext.FSGroup == nil) {
			errs = append(errs, fmt.Errorf("mounts Secret %s but sets no fsGroup: its files are root's, unreadable to the process", v.Secret.SecretName))
		}
	}
	if c.Resources.Limits.Memory().IsZero() {
		errs = append(errs, errors.New("must set a memory limit"))
	}
	for _, env := range c.Env {
		if strings.Contains(strings.ToUpper(env.Name), "TOKEN") && env.Value != "" {
			errs = append(errs, fmt.Errorf("env %s holds a literal secret; use the Secret", env.Name))
		}
	}
	return errs
}
