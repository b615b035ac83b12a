package readme

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeExplainsEveryDependency: each module go.mod requires directly
// has its row in the README's "Dependencies and why" (a module or one of
// its packages, as golang.org/x/time/rate names golang.org/x/time), and
// each module row is one go.mod requires directly.
func TestReadmeExplainsEveryDependency(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := bytes.Cut(readme, []byte("## Dependencies and why\n"))
	if !ok {
		t.Fatal(`README.md has no "## Dependencies and why"`)
	}
	var rows []string
	for _, line := range strings.Split(string(table), "\n") {
		if mod, ok := strings.CutPrefix(line, "| "); ok {
			rows = append(rows, strings.TrimSpace(strings.SplitN(mod, "|", 2)[0]))
		}
	}
	gomod, err := os.Open(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer gomod.Close()
	direct := 0
	var required []string
	inRequire := false
	sc := bufio.NewScanner(gomod)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "require (":
			inRequire = true
		case line == ")":
			inRequire = false
		case inRequire && line != "" && !strings.HasSuffix(line, "// indirect"):
			direct++
			mod := strings.Fields(line)[0]
			required = append(required, mod)
			found := false
			for _, r := range rows {
				found = found || r == mod || strings.HasPrefix(r, mod+"/")
			}
			if !found {
				t.Errorf("go.mod requires %s, which README.md's \"Dependencies and why\" does not explain", mod)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	// And the other way: a row naming a Go module (a path alone in its
	// cell; the vendored scripts and the staticcheck row say more) is a
	// direct requirement, or the README explains one that is gone.
	for _, r := range rows {
		if strings.ContainsAny(r, " `") || !strings.Contains(r, ".") || !strings.Contains(r, "/") {
			continue
		}
		found := false
		for _, mod := range required {
			found = found || r == mod || strings.HasPrefix(r, mod+"/")
		}
		if !found {
			t.Errorf("README.md's \"Dependencies and why\" explains %s, which go.mod does not require directly", r)
		}
	}
	if direct < 10 {
		t.Errorf("read %d direct requirements in go.mod, want over 10: is the reading still right?", direct)
	}
}
