package secrettest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

var (
	env *pipelinetest.Env
	bin string // the pushpipe binary under test
)

// TestMain gets the pushpipe binary (pipelinetest.Binary) and starts Redis and PostgreSQL.
func TestMain(m *testing.M) {
	var err error
	if bin, err = pipelinetest.BinaryPath(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pipelinetest.Main(m, pipelinetest.EnvOptions{Redis: true, Postgres: true}, &env)
}

// secret is a fresh random token.
func secret(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// freeAddr: see pipelinetest.FreeAddr.
func freeAddr(t *testing.T) string { return pipelinetest.FreeAddr(t) }

// proc is a pushpipe process whose stdout and stderr are kept whole.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error // the exit status, once done is closed
}

// syncBuffer is a bytes.Buffer written by the process's two pipes at once.
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

// start runs `pushpipe args...` with the given environment (and nothing
// else from ours but PATH and HOME, so no stray credential leaks in).
func start(t *testing.T, name string, environ []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, environ...)
	p := &proc{name: name, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop() })
	return p
}

// run is start, then waiting for the exit (at most a minute).
func run(t *testing.T, name string, environ []string, args ...string) *proc {
	t.Helper()
	p := start(t, name, environ, args...)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Fatalf("%s did not exit; output:\n%s", name, p.out)
	}
	return p
}

// stop sends SIGTERM, then SIGKILL after 10 s, and waits for the exit.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitFor polls cond until it holds; past the timeout the test fails.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool, procs ...*proc) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		for _, p := range procs {
			if p.exited() {
				t.Fatalf("waiting for %s: %s exited (%v):\n%s", what, p.name, p.err, p.out)
			}
		}
		if time.Now().After(deadline) {
			for _, p := range procs {
				t.Logf("%s output:\n%s", p.name, p.out)
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready is true once GET http://addr/readyz answers 200.
func ready(addr string) func() bool {
	return func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
}

// listening is true once addr accepts TCP connections.
func listening(addr string) func() bool {
	return func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
}
