package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/pushpipe/pushpipe/pipeline"
)

// checkDocs holds deploy/README.md to the manifests: its table of roles
// (replicas, PostgreSQL connections, Secrets), its connection budget, and
// the alerts and Secrets it names.
func (m *manifests) checkDocs() []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	path := filepath.Join(m.dir, "..", "README.md")
	b, err := os.ReadFile(path)
	if err != nil {
		return []error{err}
	}
	readme := string(b)
	rows := map[string][]string{} // role → cells of its row in the roles table
	for _, line := range strings.Split(readme, "\n") {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) != 4 || !strings.HasPrefix(strings.TrimSpace(cells[0]), "`") {
			continue
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows[strings.Trim(cells[0], "`")] = cells
	}
	roles := []string{"api"}
	for _, s := range pipeline.Stages {
		roles = append(roles, s.Name)
	}
	budget := 0
	for _, role := range roles {
		d := m.deployments["pushpipe-"+role]
		if d == nil {
			continue // reported by check
		}
		row, ok := rows[role]
		if !ok {
			fail("%s: the roles table has no row for `%s`", path, role)
			continue
		}
		lo, hi := int32(1), int32(1)
		if d.Spec.Replicas != nil {
			lo, hi = *d.Spec.Replicas, *d.Spec.Replicas
		}
		for _, s := range m.scaled {
			if s.Spec.ScaleTargetRef.Name == d.Name && s.Spec.MinReplicaCount != nil && s.Spec.MaxReplicaCount != nil {
				lo, hi = *s.Spec.MinReplicaCount, *s.Spec.MaxReplicaCount
			}
		}
		replicas := strconv.Itoa(int(lo))
		if hi != lo {
			replicas += "–" + strconv.Itoa(int(hi))
		}
		if row[1] != replicas {
			fail("%s: `%s` replicas %q, the manifests say %q", path, role, row[1], replicas)
		}
		conns := "—"
		args := d.Spec.Template.Spec.Containers[0].Args
		if i := slices.Index(args, "--db-conns"); i >= 0 && i+1 < len(args) {
			conns = args[i+1]
			n, _ := strconv.Atoi(conns)
			budget += n * int(hi)
		} else if slices.Contains(secretsOf(&d.Spec.Template.Spec), secretDB) {
			fail("Deployment %s reads PostgreSQL but does not say --db-conns (the budget is read off the manifests)", d.Name)
		}
		if row[2] != conns {
			fail("%s: `%s` PostgreSQL connections %q, the manifests say %q", path, role, row[2], conns)
		}
		var secrets []string
		for _, s := range secretsOf(&d.Spec.Template.Spec) {
			secrets = append(secrets, "`"+s+"`")
		}
		if want := strings.Join(secrets, ", "); row[3] != want {
			fail("%s: `%s` Secrets %q, the manifests say %q", path, role, row[3], want)
		}
	}
	if m := regexp.MustCompile(`(\d+) PostgreSQL connections at the maxima`).FindStringSubmatch(readme); m == nil {
		fail("%s does not state the connection budget (\"N PostgreSQL connections at the maxima\")", path)
	} else if m[1] != strconv.Itoa(budget) {
		fail("%s: budget %s PostgreSQL connections at the maxima, the manifests add up to %d", path, m[1], budget)
	}
	for name := range alerts {
		if !strings.Contains(readme, name) {
			fail("%s does not name the alert %s", path, name)
		}
	}
	for name := range m.secrets {
		if !strings.Contains(readme, "`"+name+"`") {
			fail("%s does not name the Secret %s", path, name)
		}
	}
	return errs
}
