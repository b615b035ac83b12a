package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

// prometheusRule is the part of monitoring.coreos.com/v1 PrometheusRule the
// manifests use.
type prometheusRule struct {
	customHead
	Spec struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels,omitempty"`
				Annotations map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// triggerAuthentication is the part of KEDA's TriggerAuthentication used.
type triggerAuthentication struct {
	customHead
	Spec struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef"`
	} `json:"spec"`
}

// alerts are the alerts deploy/README.md tells operators to have, each
// with the series it watches.
var alerts = map[string]string{
	"PushpipeGroupLagHigh":            "pushpipe_group_lag",
	"PushpipeDLQGrowing":              "pushpipe_entries_dead_lettered_total",
	"PushpipeRedisMemoryHigh":         "redis_memory_used_bytes",
	"PushpipeDeliverFailureRateHigh":  "pushpipe_deliver_sends_total",
	"PushpipeInvalidTokenRateHigh":    "pushpipe_deliver_sends_total",
	"PushpipeCampaignsStuckSplitting": `pushpipe_group_lag{stage="split"}`,
	"PushpipeMessagesLate":            `pushpipe_deliver_accept_to_send_seconds_bucket{lane="express"`,
}

func (m *manifests) checkAlertsAndPolicies() []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if m.rules == nil {
		fail("no PrometheusRule")
	} else {
		have := map[string]string{}
		for _, g := range m.rules.Spec.Groups {
			for _, r := range g.Rules {
				have[r.Alert] = r.Expr
				if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
					fail("alert %s: needs a summary and a description saying what to do", r.Alert)
				}
				if known, err := m.registered(); err != nil {
					fail("alert %s: %v", r.Alert, err)
				} else if bad := unknownMetrics(r.Expr, known); len(bad) > 0 {
					fail("alert %s: %s not a metric pushpipe registers (nor %s): %s", r.Alert, strings.Join(bad, ", "), strings.Join(external, ", "), r.Expr)
				}
				if by := groupDropped(r.Expr); by != "" {
					fail("alert %s: %s drops the group label of the runner's lag or pending: add group, or two webhook receivers add up: %s", r.Alert, by, r.Expr)
				}
			}
		}
		for name, series := range alerts {
			expr, ok := have[name]
			switch {
			case !ok:
				fail("PrometheusRule has no alert %s", name)
			case !strings.Contains(expr, series):
				fail("alert %s does not watch %s: %s", name, series, expr)
			}
		}
	}
	var defaultDeny, apiOpen, opsFromMonitoring bool
	for _, p := range m.policies {
		sel := p.Spec.PodSelector
		if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 && len(p.Spec.Ingress) == 0 &&
			slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			defaultDeny = true
		}
		for _, in := range p.Spec.Ingress {
			for _, port := range in.Ports {
				if port.Port == nil {
					continue
				}
				switch port.Port.String() {
				case "http":
					apiOpen = apiOpen || sel.MatchLabels["app.kubernetes.io/name"] == "pushpipe-api"
				case "ops", "9090":
					for _, from := range in.From {
						if from.NamespaceSelector == nil || from.PodSelector != nil || from.IPBlock != nil {
							fail("NetworkPolicy %s opens the ops port to more than a monitoring namespace", p.Name)
						}
					}
					opsFromMonitoring = opsFromMonitoring || len(in.From) > 0
				}
			}
		}
	}
	if !defaultDeny {
		fail("no default-deny ingress NetworkPolicy")
	}
	if !apiOpen {
		fail("no NetworkPolicy lets clients reach the API's http port")
	}
	if !opsFromMonitoring {
		fail("no NetworkPolicy lets the monitoring namespace scrape the ops port")
	}
	return errs
}

// printRules writes the PrometheusRule of the manifests in dir as a
// Prometheus rules file, for promtool's unit tests of the alerts
// (deploy/alerts_test.yaml, run by deploy/check.sh).
func printRules(w io.Writer, dir string) error {
	m, errs := load(dir)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if m.rules == nil {
		return errors.New("no PrometheusRule")
	}
	b, err := yaml.Marshal(m.rules.Spec)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
