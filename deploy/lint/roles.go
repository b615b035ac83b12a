package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/pushpipe/pushpipe/pipeline"
)

// Who may hold which Secret: a process gets only the credentials its role
// uses, so a leaked stage pod exposes neither the operator token nor the
// schema owner's password.
const (
	secretRedis     = "pushpipe-redis"      // every process
	secretDB        = "pushpipe-db"         // the API and the stages whose row says DB
	secretMigrateDB = "pushpipe-migrate-db" // the migration Job only
	secretAPI       = "pushpipe-api"        // the admin token and app keys: the API only
	secretProviders = "pushpipe-providers"  // deliver only
)

// secretsOf lists the Secrets a pod spec reads, by environment or volume.
func secretsOf(pod *corev1.PodSpec) []string {
	var out []string
	for _, c := range append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...) {
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				out = append(out, e.SecretRef.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				out = append(out, e.ValueFrom.SecretKeyRef.Name)
			}
		}
	}
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			out = append(out, v.Secret.SecretName)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// checkRoles: each workload reads exactly the Secrets of its role, and
// every Secret read is defined.
func (m *manifests) checkRoles() []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	want := map[string][]string{ // workload → its Secrets
		"Deployment pushpipe-api": {secretAPI, secretDB, secretRedis},
		"Job pushpipe-migrate":    {secretMigrateDB},
	}
	for _, s := range pipeline.Stages {
		if s.Optional && m.deployments["pushpipe-"+s.Name] == nil {
			continue // runs only where an operator configures it
		}
		w := []string{secretRedis}
		if s.DB {
			w = append(w, secretDB)
		}
		if s.Name == "deliver" {
			w = append(w, secretProviders)
		}
		slices.Sort(w)
		want["Deployment pushpipe-"+s.Name] = w
	}
	got := map[string][]string{}
	created := map[string]string{} // workload → the Secret its operator creates, no manifest
	for name, d := range m.deployments {
		got["Deployment "+name] = secretsOf(&d.Spec.Template.Spec)
		if isWebhook(d) {
			// A receiver's own Secret (webhookName: its URL and signing
			// secrets), created with kubectl (deploy/README.md): a
			// placeholder would be applied over the real one.
			w := []string{secretRedis, name}
			slices.Sort(w)
			want["Deployment "+name] = w
			created["Deployment "+name] = name
		}
	}
	for name, pod := range m.jobs {
		got["Job "+name] = secretsOf(pod)
	}
	names := make([]string, 0, len(got))
	for w := range got {
		names = append(names, w)
	}
	sort.Strings(names)
	for _, w := range names {
		for _, s := range got[w] {
			if m.secrets[s] == nil && created[w] != s {
				fail("%s reads Secret %s, which no manifest defines", w, s)
			}
		}
		exp, ok := want[w]
		if !ok { // other jobs (the consumer cleanup) talk to Redis only
			exp = []string{secretRedis}
		}
		if !slices.Equal(got[w], exp) {
			fail("%s reads Secrets [%s], its role needs exactly [%s]", w, strings.Join(got[w], " "), strings.Join(exp, " "))
		}
	}
	for w := range want {
		if _, ok := got[w]; !ok {
			fail("no %s", w)
		}
	}
	return errs
}
