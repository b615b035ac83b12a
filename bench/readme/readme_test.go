// Package readme runs the README and docs/API.md: every block fenced ```sh
// is run, in order, in a shell that sourced .pushpipe/env of a running
// `pushpipe dev`,
// so a README command that stops working fails a test. Blocks fenced
// otherwise (```console, ```text, ...) are illustrations and are not run.
package readme

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// shBlocks returns the README's ```sh blocks with the line each starts on.
func shBlocks(t *testing.T, readme string) (blocks []string, lines []int) {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	var cur *strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```sh":
			cur = &strings.Builder{}
			lines = append(lines, n)
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	if cur != nil {
		t.Fatalf("%s: the ```sh block at line %d is never closed", readme, lines[len(lines)-1])
	}
	return blocks, lines
}

// devProc is a running `pushpipe dev`.
type devProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

// binaryIn links the tests' pushpipe binary into work, where the README's
// commands run it as ./pushpipe.
func binaryIn(t *testing.T, work string) string {
	t.Helper()
	bin := filepath.Join(work, "pushpipe")
	if err := os.Symlink(pipelinetest.Binary(t), bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

func startDev(t *testing.T, bin, work, listen string, env []string, extra ...string) *devProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"dev", "--users", "2000", "--listen", listen}, extra...)...)
	cmd.Dir = work
	cmd.Env = append(cleanEnv(), env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &devProc{cmd: cmd, out: out, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait() }()
	t.Cleanup(func() { d.stop(t) })
	return d
}

// waitFor waits until dev prints s (or exits, or the time is up).
func (d *devProc) waitFor(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(d.out.String(), s) {
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("pushpipe dev exited (%v) before printing %q:\n%s", err, s, d.out.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("pushpipe dev did not print %q within %v:\n%s", s, timeout, d.out.String())
		}
	}
}

// stop interrupts dev, as Ctrl-C does, and waits for it to stop its
// servers.
func (d *devProc) stop(t *testing.T) {
	if d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-d.done:
		d.done <- err
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		t.Errorf("pushpipe dev did not stop within 30 s of SIGINT:\n%s", d.out.String())
	}
}

// TestReadmeCommands starts `pushpipe dev` from a directory holding the
// binary as ./pushpipe (as after `make dev`), then runs every ```sh block
// of the README in a new shell that sourced .pushpipe/env. Then it stops
// dev and checks the second-shell promises: without dev the CLI fails
// within 2 s naming PUSHPIPE_REDIS_ADDR, and a new run keeps the same
// ports and tokens.
func TestReadmeCommands(t *testing.T) {
	var blocks, where []string
	for _, doc := range []string{"README.md", "docs/API.md"} {
		bs, lines := shBlocks(t, filepath.Join("..", "..", doc))
		if len(bs) < 1 {
			t.Fatalf("%s has no ```sh blocks; the README test expects its commands in them", doc)
		}
		for i := range bs {
			blocks = append(blocks, bs[i])
			where = append(where, fmt.Sprintf("%s:%d", doc, lines[i]))
		}
	}
	work := t.TempDir()
	bin := binaryIn(t, work)
	data := filepath.Join(work, ".pushpipe")
	t.Cleanup(func() { removeDevPostgres(data) })
	listen := freeAddr(t)

	dev := startDev(t, bin, work, listen, nil)
	dev.waitFor(t, "serving the API until Ctrl-C", 3*time.Minute)
	if !strings.Contains(dev.out.String(), "source .pushpipe/env") {
		t.Errorf("pushpipe dev does not say `source .pushpipe/env`:\n%s", dev.out.String())
	}
	// What it says to type in another shell works from any directory, as
	// `make -C clone dev` is run from one.
	if cd := lineWith(dev.out.String(), "cd ", "source "); cd == "" {
		t.Errorf("pushpipe dev does not say to cd to %s before sourcing its env file:\n%s", work, dev.out.String())
	} else if out, err := runBash(t, "/", cd+"\n./pushpipe status", 30*time.Second); err != nil || !strings.Contains(out, "deliver") {
		t.Errorf("%q then ./pushpipe status, from /: %v\n%s", cd, err, out)
	}
	// A second dev in the same directory, from another shell, refuses at
	// once and says what to do; the first keeps serving.
	second := startDev(t, bin, work, freeAddr(t), nil, "--once")
	select {
	case err := <-second.done:
		second.done <- err
		if err == nil || !strings.Contains(second.out.String(), "pushpipe: dev already runs on "+data) {
			t.Errorf("a second pushpipe dev on %s: %v, want a refusal naming it:\n%s", data, err, second.out.String())
		}
	case <-time.After(time.Minute):
		t.Errorf("a second pushpipe dev on %s did not refuse within a minute:\n%s", data, second.out.String())
	}
	envFile := filepath.Join(data, "env")
	st, err := os.Stat(envFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s is %v, want 0600 (it holds the tokens)", envFile, st.Mode().Perm())
	}
	env1, _ := os.ReadFile(envFile)
	for _, v := range []string{"PUSHPIPE_REDIS_ADDR", "PUSHPIPE_DATABASE_URL", "PUSHPIPE_ADMIN_TOKEN", "PUSHPIPE_APP_KEY", "PUSHPIPE_API"} {
		if !bytes.Contains(env1, []byte("export "+v+"=")) {
			t.Errorf("%s exports no %s:\n%s", envFile, v, env1)
		}
	}
	// Its API's 422 for an app it does not serve names dev's app: dev sets
	// PUSHPIPE_APP_KEYS itself, and "add it to PUSHPIPE_APP_KEYS and
	// restart" could not be followed.
	if m := regexp.MustCompile(`(?m)^export PUSHPIPE_ADMIN_TOKEN=(\S+)$`).FindSubmatch(env1); m == nil {
		t.Errorf("%s exports no admin token to call the API with", envFile)
	} else {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+listen+"/v1/campaigns",
			strings.NewReader(`{"app":"com.example.other","channels":["news"],"notification":{"title":"t"}}`))
		req.Header.Set("Authorization", "Bearer "+string(m[1]))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := `pushpipe dev serves only the app it seeded (\"demo\"): use it`; resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), want) {
			t.Errorf("a campaign of an app dev does not serve: %d %s, want 422 saying %s", resp.StatusCode, body, want)
		}
	}

	for i, block := range blocks {
		t0 := time.Now()
		out, err := runShell(t, work, block, time.Minute)
		if err != nil {
			t.Errorf("%s: the ```sh block failed (%v) after %v:\n%s\noutput:\n%s", where[i], err,
				time.Since(t0).Round(time.Millisecond), block, out)
			continue
		}
		t.Logf("%s ran in %v", where[i], time.Since(t0).Round(time.Millisecond))
	}

	dev.stop(t)
	t0 := time.Now()
	// Refused at once on a quiet box (nothing listens); 15 s is a hang
	// guard under the 30 s a command waiting for Redis would take.
	out, err := runShell(t, work, "./pushpipe status", 40*time.Second)
	if took := time.Since(t0); err == nil || took > 15*time.Second || !strings.Contains(out, "PUSHPIPE_REDIS_ADDR") {
		t.Errorf("pushpipe status with dev stopped: %v after %v, want a failure, not a wait, naming PUSHPIPE_REDIS_ADDR:\n%s", err, took, out)
	}

	// The same directory again, from the shell that sourced the file (its
	// addresses are dev's own servers, to start again, not to wait for):
	// the same ports and tokens, so that shell keeps working.
	dev = startDev(t, bin, work, listen, exports(t, env1), "--once")
	select {
	case err := <-dev.done:
		dev.done <- err
		if err != nil {
			t.Fatalf("second pushpipe dev --once: %v\n%s", err, dev.out.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("second pushpipe dev --once did not finish:\n%s", dev.out.String())
	}
	env2, _ := os.ReadFile(envFile)
	if !bytes.Equal(env1, env2) {
		t.Errorf("a second run changed .pushpipe/env (ports or tokens):\nfirst:\n%s\nsecond:\n%s", env1, env2)
	}
}

// exports reads the `export K=V` lines of an env file as the shell would.
func exports(t *testing.T, file []byte) []string {
	t.Helper()
	var env []string
	for _, line := range strings.Split(string(file), "\n") {
		kv, ok := strings.CutPrefix(line, "export ")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if unq, ok := strings.CutPrefix(v, "'"); ok {
			v = strings.ReplaceAll(strings.TrimSuffix(unq, "'"), `'\''`, "'")
		}
		env = append(env, k+"="+v)
	}
	if len(env) == 0 {
		t.Fatalf("no export lines in:\n%s", file)
	}
	return env
}

// lineWith is the first line of out holding every one of parts, trimmed,
// or "".
func lineWith(out string, parts ...string) string {
	for _, l := range strings.Split(out, "\n") {
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(l, p) }) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// runShell runs script in bash (errexit, pipefail) after sourcing
// .pushpipe/env, in dir.
func runShell(t *testing.T, dir, script string, timeout time.Duration) (string, error) {
	return runBash(t, dir, "source .pushpipe/env\n"+script, timeout)
}

// runBash runs script in bash (errexit, pipefail) in dir, in a fresh
// shell's environment.
func runBash(t *testing.T, dir, script string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -euo pipefail\n"+script)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// cleanEnv is this process's environment without PUSHPIPE_ settings, as in
// a fresh shell.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PUSHPIPE_") {
			env = append(env, kv)
		}
	}
	return env
}

// freeAddr: see pipelinetest.FreeAddr.
func freeAddr(t *testing.T) string { return pipelinetest.FreeAddr(t) }

// removeDevPostgres removes, as `make clean` does, the directory in
// /var/tmp that dev uses for PostgreSQL when run as root.
func removeDevPostgres(data string) {
	target, err := os.Readlink(filepath.Join(data, "postgres"))
	if err == nil && regexp.MustCompile(`/pushpipe-dev-[0-9a-f]+$`).MatchString(target) {
		os.RemoveAll(target)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDevWithAGivenRedis runs `pushpipe dev --once` against a Redis that
// wants a password, given as the other commands take it: every process dev
// starts reaches it, the demo campaign goes out, and .pushpipe/env carries
// the credentials, so the CLI in another shell reaches it too.
func TestDevWithAGivenRedis(t *testing.T) {
	redis := pipelinetest.RedisT(t, pipelinetest.RedisOptions{Security: pipelinetest.SecurityAuth})
	db := pipelinetest.DatabaseT(t, pipelinetest.PostgresT(t))
	work := t.TempDir()
	bin := binaryIn(t, work)
	dev := startDev(t, bin, work, freeAddr(t), []string{"PUSHPIPE_REDIS_ADDR=" + redis.Addr, "PUSHPIPE_DATABASE_URL=" + db,
		"PUSHPIPE_REDIS_USERNAME=" + redis.Client.Username, "PUSHPIPE_REDIS_PASSWORD=" + redis.Client.Password}, "--once")
	select {
	case err := <-dev.done:
		dev.done <- err
		if err != nil {
			t.Fatalf("pushpipe dev --once against a Redis with a password: %v\n%s", err, dev.out.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("pushpipe dev --once did not finish:\n%s", dev.out.String())
	}
	env, err := os.ReadFile(filepath.Join(work, ".pushpipe", "env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"PUSHPIPE_REDIS_USERNAME", "PUSHPIPE_REDIS_PASSWORD"} {
		if !bytes.Contains(env, []byte("export "+v+"=")) {
			t.Errorf(".pushpipe/env exports no %s:\n%s", v, env)
		}
	}
}
