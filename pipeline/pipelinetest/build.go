package pipelinetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
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

// BinaryEnv names the environment variable that holds the absolute path of
// a pushpipe binary built from this tree. `make test` builds one and every
// package runs it: each building its own was a link of the whole tree,
// 6 CPU-seconds, a dozen times in a run. Outside make the variable is
// unset and the first package test that needs the binary builds it.
const BinaryEnv = "PUSHPIPE_TEST_BIN"

var built struct {
	once sync.Once
	dir  string // a directory Binary made, removed by Main; "" when given
	path string
	err  error
}

// Binary returns the pushpipe binary for tests that run it as a process:
// $PUSHPIPE_TEST_BIN, else cmd/pushpipe built once per test binary into a
// directory Main removes when the tests end.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := BinaryPath()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// BinaryPath is Binary for a TestMain, which has no testing.TB.
func BinaryPath() (string, error) {
	built.once.Do(func() {
		if p := os.Getenv(BinaryEnv); p != "" {
			if !filepath.IsAbs(p) {
				built.err = fmt.Errorf("%s=%s: give an absolute path (the tests run in their packages' directories)", BinaryEnv, p)
			} else if _, err := os.Stat(p); err != nil {
				built.err = fmt.Errorf("%s: %w (build it, or unset %s to have the tests build one)", BinaryEnv, err, BinaryEnv)
			}
			built.path = p
			return
		}
		if built.dir, built.err = os.MkdirTemp("", "pushpipe-test-bin-"); built.err != nil {
			return
		}
		built.path, built.err = BuildPushpipe(built.dir)
	})
	return built.path, built.err
}

// removeBinary removes the binary BinaryPath built, if it built one.
func removeBinary() {
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
}
