package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pushpipe/pushpipe/bench/localserver"
)

// Proc is one pushpipe child process: a stage replica, the API or the fake
// provider. It can be killed and started again with the same command line
// (the same consumer name and ops port).
type Proc struct {
	Name  string // e.g. "deliver-2"
	Role  string // the subcommand: "deliver", "api", "fakeprovider"...
	HTTP  string // its ops address (/metrics, /readyz), "" if none
	args  []string
	env   []string
	bin   string
	logTo string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	starts int
}

// Fleet starts and stops the processes of a run.
type Fleet struct {
	Bin    string   // the pushpipe binary
	LogDir string   // one log file per process
	Env    []string // added to every process's environment

	mu    sync.Mutex
	procs []*Proc
}

// Add starts a process running `pushpipe role args...` with its own ops port
// (--http) if withHTTP.
func (f *Fleet) Add(name, role string, withHTTP bool, env []string, args ...string) (*Proc, error) {
	p := &Proc{Name: name, Role: role, bin: f.Bin, logTo: filepath.Join(f.LogDir, name+".log")}
	p.args = append([]string{role}, args...)
	if withHTTP {
		port, err := localserver.FreePort()
		if err != nil {
			return nil, err
		}
		p.HTTP = fmt.Sprintf("127.0.0.1:%d", port)
		p.args = append(p.args, "--http", p.HTTP)
	}
	p.env = append(append(os.Environ(), f.Env...), env...)
	if err := p.Start(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.procs = append(f.procs, p)
	f.mu.Unlock()
	return p, nil
}

// AddStage starts replicas of a stage, consumers named stage-1..stage-n.
func (f *Fleet) AddStage(stage string, replicas int, args ...string) ([]*Proc, error) {
	var out []*Proc
	for i := 1; i <= replicas; i++ {
		name := fmt.Sprintf("%s-%d", stage, i)
		p, err := f.Add(name, stage, true, nil, append([]string{"--consumer", name}, args...)...)
		if err != nil {
			return out, fmt.Errorf("start %s: %w", name, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// Procs is every process, in start order.
func (f *Fleet) Procs() []*Proc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*Proc(nil), f.procs...)
}

// Stages are the processes of the given roles.
func (f *Fleet) Stages(roles ...string) []*Proc {
	var out []*Proc
	for _, p := range f.Procs() {
		for _, r := range roles {
			if p.Role == r {
				out = append(out, p)
			}
		}
	}
	return out
}

// Start launches the process. It dies with us (Pdeathsig), so an
// interrupted bench leaves nothing behind.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	logf, err := os.OpenFile(p.logTo, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait() // reaps it: PID 1 here does not
		logf.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	p.starts++
	return nil
}

// PID is the current process id (0 if it is not running).
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil || p.exited() {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *Proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done == nil || p.exited()
}

// Kill SIGKILLs the process and waits until it is gone.
func (p *Proc) Kill() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", p.Name, err)
	}
	<-done
	return nil
}

// Stop sends SIGTERM and waits up to timeout, then SIGKILLs.
func (p *Proc) Stop(timeout time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(timeout):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

// ExitState is how the process ended ("exit status 1", "signal: killed"),
// "" while it runs.
func (p *Proc) ExitState() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.done == nil || !p.exited() || p.cmd.ProcessState == nil {
		return ""
	}
	return p.cmd.ProcessState.String() // set by Wait before done closed
}

// LogPath is the process's log file.
func (p *Proc) LogPath() string { return p.logTo }

// LogTail is the end of the process's log, for error messages.
func (p *Proc) LogTail(n int) string {
	b, _ := os.ReadFile(p.logTo)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// WaitReady waits until every process with an ops port answers /readyz.
func (f *Fleet) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for _, p := range f.Procs() {
		if p.HTTP == "" {
			continue
		}
		if err := p.waitReady(ctx, client); err != nil {
			return err
		}
	}
	return nil
}

func (p *Proc) waitReady(ctx context.Context, client *http.Client) error {
	for {
		if p.Exited() {
			return fmt.Errorf("%s exited during start; log:\n%s", p.Name, p.LogTail(2000))
		}
		resp, err := client.Get("http://" + p.HTTP + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w; log:\n%s", p.Name, ctx.Err(), p.LogTail(2000))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// StopAll stops every process, all at once (each gets SIGTERM, then SIGKILL
// after timeout).
func (f *Fleet) StopAll(timeout time.Duration) {
	var wg sync.WaitGroup
	for _, p := range f.Procs() {
		wg.Go(func() { p.Stop(timeout) })
	}
	wg.Wait()
}

// Crashed lists processes that exited on their own (not killed by chaos and
// not yet restarted), with their log tails.
func (f *Fleet) Crashed() []string {
	var out []string
	for _, p := range f.Procs() {
		if p.Exited() {
			out = append(out, p.Name+":\n"+p.LogTail(1500))
		}
	}
	sort.Strings(out)
	return out
}

// Restarts is how many times processes were started again.
func (p *Proc) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts - 1
}

// CommandLine is the process's command, for the log.
func (p *Proc) CommandLine() string { return "pushpipe " + strings.Join(p.args, " ") }
