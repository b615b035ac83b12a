package pipeline_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// One owner per fact, checked on the source so it stays true: each rule is
// a pattern no production file outside its owner may contain.
func TestOneOwnerPerFact(t *testing.T) {
	tests := []struct {
		fact    string
		pattern *regexp.Regexp
		owner   func(path string) bool // files allowed to match
	}{
		{
			// The runner owns every stream write, ack and claim (batch.go).
			fact:    "only the pipeline package XACKs, XADDs, XAUTOCLAIMs or XCLAIMs",
			pattern: regexp.MustCompile(`(?i)\.(Xack|Xadd|Xautoclaim|Xclaim)\(\)|['"](XACK|XADD|XAUTOCLAIM|XCLAIM)['"]`),
			owner:   func(p string) bool { return filepath.Dir(p) == "pipeline" },
		},
		{
			// Keys is the one place that knows key names: no hash tag, key
			// prefix or key suffix is spelled anywhere else, in Go or Lua.
			fact: "only pipeline.Keys builds Redis key names",
			pattern: regexp.MustCompile(`\{(p|c)(\d|%|"|` + "`" + `|\s*\+)|\{(dlq|meta|console|cap:)|\.Prefix\s*\+|\+\s*":\{|` +
				`\.\.\s*'[:{]|"pp:`),
			owner: func(p string) bool { return p == "pipeline/keys.go" },
		},
		{
			fact:    "only pipeline/campaign touches the campaigns table",
			pattern: regexp.MustCompile(`(?i)\b(from|into|update|join|table)\s+campaigns\b`),
			owner: func(p string) bool {
				return strings.HasPrefix(p, "pipeline/campaign/") || strings.HasPrefix(p, "pipeline/schema/migrations/")
			},
		},
	}
	files := productionFiles(t)
	for _, tt := range tests {
		t.Run(tt.fact, func(t *testing.T) {
			for path, src := range files {
				if tt.owner(path) {
					continue
				}
				for i, line := range strings.Split(src, "\n") {
					if tt.pattern.MatchString(line) {
						t.Errorf("%s:%d: %s", path, i+1, strings.TrimSpace(line))
					}
				}
			}
		})
	}
}

// productionFiles are the module's Go and SQL files that are not tests, by
// path from the module root (deploy/lint's module included: it is code the
// project ships).
func productionFiles(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("..", path)
		if d.IsDir() {
			if name := d.Name(); rel != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, "_test.go") || !(strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".sql")) {
			return nil
		}
		src, err := os.ReadFile(path)
		out[filepath.ToSlash(rel)] = string(src)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 100 {
		t.Fatalf("read %d files from the module root: the walk is wrong", len(out))
	}
	return out
}

// The production binary links no test code: neither the testing package
// nor the test bed.
func TestBinaryLinksNoTesting(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../cmd/pushpipe").Output()
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps gave %d packages", len(deps))
	}
	for _, p := range deps {
		if p == "testing" || strings.HasPrefix(p, "testing/") || strings.HasSuffix(p, "/pipelinetest") {
			t.Errorf("the pushpipe binary links %s", p)
		}
	}
}
