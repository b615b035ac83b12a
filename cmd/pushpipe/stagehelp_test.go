package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
)

// Each stage command's help says its own defaults of the flags every stage
// shares, as numbers: it said "(default: the stage's own, see
// pipeline.Stages)", which sends a newcomer to the source.
func TestStageHelpSaysItsDefaults(t *testing.T) {
	help := helper(t)
	for _, def := range pipeline.Stages {
		out := strings.Join(strings.Fields(help(def.Name)), " ") // unwrapped
		want := []string{fmt.Sprintf("--concurrency=INT Handlers running at once (default %d).", def.Concurrency)}
		if def.Name != "webhook" { // its --batch is events per POST
			want = append(want, fmt.Sprintf("--batch=INT Entries read per XREADGROUP (default %d).", def.Batch))
		}
		if def.Express {
			want = append(want, "--express-concurrency=INT Handlers that take express batches only, on top of --concurrency (default ")
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("pushpipe %s --help lacks %q:\n%s", def.Name, w, help(def.Name))
			}
		}
		if strings.Contains(out, "pipeline.Stages") {
			t.Errorf("pushpipe %s --help names pipeline.Stages, a Go identifier, for a default:\n%s", def.Name, help(def.Name))
		}
	}
}
