package pipelinetest

import (
	"fmt"
	"os/exec"
	"path/filepath"
)

// BuildPushpipe compiles the pushpipe binary into dir and returns its path,
// for tests that run stages as real OS processes (to SIGKILL them). The go
// tool resolves the package by import path, so it works from any package's
// test directory.
func BuildPushpipe(dir string) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("build pushpipe: the go tool is not on PATH: %w", err)
	}
	bin := filepath.Join(dir, "pushpipe")
	out, err := exec.Command(gobin, "build", "-o", bin, "github.com/pushpipe/pushpipe/cmd/pushpipe").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/pushpipe: %w\n%s", err, out)
	}
	return bin, nil
}
