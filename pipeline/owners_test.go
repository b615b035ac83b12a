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
		// Every line the pattern matches contains one of hints (lowered
		// first when lower): only those lines are matched. Under -race the
		// regexp engine took this test 40-51 s of the package's run over
		// the module's 50,000 lines; strings.Contains skips nearly all of
		// them for next to nothing.
		hints []string
		lower bool
		owner func(path string) bool // files allowed to match
		// Lines it must catch, each through a different part of the
		// pattern: they keep the hints in step with the pattern.
		catches []string
	}{
		{
			// The runner owns every stream write, ack and claim (batch.go).
			fact:    "only the pipeline package XACKs, XADDs, XAUTOCLAIMs or XCLAIMs",
			pattern: regexp.MustCompile(`(?i)\.(Xack|Xadd|Xautoclaim|Xclaim)\(\)|['"](XACK|XADD|XAUTOCLAIM|XCLAIM)['"]`),
			hints:   []string{"xack", "xadd", "xautoclaim", "xclaim"},
			lower:   true,
			owner:   func(p string) bool { return filepath.Dir(p) == "pipeline" },
			catches: []string{
				`rdb.B().Xack().Key(k)`, `c.B().XADD().Key(k)`, `b.Xautoclaim()`, `b.Xclaim()`,
				`redis.call('XACK', KEYS[1])`, `"xadd"`, `'XAUTOCLAIM'`, `"XCLAIM"`,
			},
		},
		{
			// Keys is the one place that knows key names: no hash tag, key
			// prefix or key suffix is spelled anywhere else, in Go or Lua.
			fact: "only pipeline.Keys builds Redis key names",
			pattern: regexp.MustCompile(`\{(p|c)(\d|%|"|` + "`" + `|\s*\+)|\{(dlq|meta|console|cap:)|\.Prefix\s*\+|\+\s*":\{|` +
				`\.\.\s*'[:{]|"pp:`),
			hints: []string{"{p", "{c", "{dlq", "{meta", ".Prefix", `":{`, "..", `"pp:`},
			owner: func(p string) bool { return p == "pipeline/keys.go" },
			catches: []string{
				`k := "x:{p3}:in"`, `fmt.Sprintf("{p%d}", n)`, `"{c" + id`, "`{c`", `"{dlq}:x"`, `"{meta}"`,
				`"{console}"`, `"{cap:apns}"`, `k.Prefix + "x"`, `id + ":{"`, `KEYS[1] .. ':x'`, `"pp:deliver"`,
			},
		},
		{
			fact:    "only pipeline/campaign touches the campaigns table",
			pattern: regexp.MustCompile(`(?i)\b(from|into|update|join|table)\s+campaigns\b`),
			hints:   []string{"campaigns"},
			lower:   true,
			owner: func(p string) bool {
				return strings.HasPrefix(p, "pipeline/campaign/") || strings.HasPrefix(p, "pipeline/schema/migrations/")
			},
			catches: []string{
				`SELECT id FROM campaigns`, `insert into campaigns`, `UPDATE Campaigns SET`,
				`JOIN campaigns c`, `ALTER TABLE campaigns`,
			},
		},
	}
	files := productionFiles(t)
	for _, tt := range tests {
		t.Run(tt.fact, func(t *testing.T) {
			hinted := func(s string) bool {
				if tt.lower {
					s = strings.ToLower(s)
				}
				for _, h := range tt.hints {
					if strings.Contains(s, h) {
						return true
					}
				}
				return false
			}
			for _, line := range tt.catches {
				if !tt.pattern.MatchString(line) || !hinted(line) {
					t.Errorf("%q: matched %v, hinted %v; want both", line, tt.pattern.MatchString(line), hinted(line))
				}
			}
			for path, src := range files {
				if tt.owner(path) || !hinted(src) {
					continue
				}
				for i, line := range strings.Split(src, "\n") {
					if hinted(line) && tt.pattern.MatchString(line) {
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
