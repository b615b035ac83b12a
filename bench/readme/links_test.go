package readme

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsLinksResolve: every relative link of the README and
// docs/API.md, and every file of the repository they name in backquotes
// (`deploy/CAPACITY.md`, `stages/webhook/readme_receiver_test.go`), exists:
// a newcomer follows them first, and a file moved or renamed left its
// mention standing.
func TestDocsLinksResolve(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	link := regexp.MustCompile(`\]\(([^)#\s]+)`)
	named := regexp.MustCompile("`((?:bench|cmd|deploy|docs|pipeline|stages)/[A-Za-z0-9_./-]+\\.[a-z]+)`")
	for _, doc := range []string{"README.md", filepath.Join("docs", "API.md")} {
		b, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			if strings.Contains(m[1], "://") || strings.HasPrefix(m[1], "mailto:") {
				continue
			}
			checked++
			if _, err := os.Stat(filepath.Join(root, filepath.Dir(doc), m[1])); err != nil {
				t.Errorf("%s links to %s, which does not exist", doc, m[1])
			}
		}
		for _, m := range named.FindAllStringSubmatch(string(b), -1) {
			checked++
			if _, err := os.Stat(filepath.Join(root, m[1])); err != nil {
				t.Errorf("%s names `%s`, which does not exist", doc, m[1])
			}
		}
		if doc == "README.md" && checked < 10 {
			t.Errorf("checked %d links and files of %s, want over 10: is the reading still right?", checked, doc)
		}
	}
}
