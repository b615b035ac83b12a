package localserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// errPortInUse marks a start failure caused by another process taking the
// port between FreePort and the server's bind; the caller retries on a new
// port.
var errPortInUse = errors.New("port already in use")

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process can still take it before the server binds, which is why
// the Start functions retry on a new port when the bind fails. The port is
// drawn below the kernel's ephemeral range (ip_local_port_range), so the
// outgoing connections of every process on the machine, the usual takers
// (a CI run's test binaries open thousands), cannot get it in between;
// only another FreePort that draws the same port can. Where that range
// leaves too little room below it, the kernel picks (port 0). A port is
// handed out once per process: a bench or test asks for a dozen before
// binding any (a cluster's, their bus ports, each stage's ops port), and
// a port given twice is one of them failing to start.
func FreePort() (int, error) {
	lo := ephemeralLow()
	for range 50 {
		if lo-freePortMin < 1000 {
			break
		}
		port := freePortMin + rand.IntN(lo-freePortMin)
		if _, given := handedOut.LoadOrStore(port, true); given {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			l.Close()
			return port, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// handedOut holds the ports FreePort returned (or found taken), so it
// never returns one twice.
var handedOut sync.Map

// freePortMin keeps FreePort above the ports services usually own.
const freePortMin = 10000

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	lo, err := strconv.Atoi(strings.Fields(string(b) + " x")[0])
	if err != nil {
		return 32768
	}
	return lo
}

// process is a server running as our child. Its output goes to a log file
// (a file, not a pipe, so Wait returns as soon as the server exits even if
// grandchildren still hold the descriptor).
type process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once Wait has returned
	waitErr error         // Wait's result; read only after done is closed
}

// startProcess starts name with args in dir, appending its output to
// logPath. cred, when non-nil, runs it as another user (postgres refuses to
// run as root). The child gets its own process group so that kill can reach
// everything it forked.
func startProcess(dir, logPath string, cred *syscall.Credential, name string, args ...string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,
		Credential: cred,
		// If the test binary dies without closing the server (panic, test
		// timeout, ^C), the kernel kills the server instead of leaving it
		// running forever. (The signal is tied to the OS thread that
		// forked; Go keeps its threads unless a goroutine exits while
		// locked with runtime.LockOSThread.)
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("exec %s: %w", name, err)
	}
	p := &process{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has stopped and been reaped.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig (a graceful shutdown request) and waits up to timeout for
// the process to exit; if it does not, it is killed.
func (p *process) stop(sig syscall.Signal, timeout time.Duration) error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return p.kill()
	}
	select {
	case <-p.done:
		// Anything the server forked into its group (e.g. a Redis AOF
		// rewrite child) must not outlive it.
		killGroup(p.pid())
		return nil
	case <-time.After(timeout):
		return p.kill()
	}
}

// kill SIGKILLs the process, its process group and its direct children,
// and waits until it has been reaped. Direct children need their own kill
// because PostgreSQL backends call setsid() and so leave our group.
func (p *process) kill() error {
	if p.exited() {
		return nil
	}
	pid := p.pid()
	// Freeze the parent first so that it cannot fork a child we miss.
	_ = syscall.Kill(pid, syscall.SIGSTOP)
	children := childrenOf(pid)
	for _, child := range children {
		_ = syscall.Kill(child, syscall.SIGKILL)
	}
	killGroup(pid)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.After(10 * time.Second)
	select {
	case <-p.done:
	case <-deadline:
		return fmt.Errorf("pid %d did not exit after SIGKILL", pid)
	}
	// kill(2) returns before the target dies. Wait for the children too: a
	// PostgreSQL backend that still exists keeps the old shared memory
	// attached, and the next Start would refuse to run.
	for _, child := range children {
		for !processGone(child) {
			select {
			case <-deadline:
				return fmt.Errorf("child pid %d did not exit after SIGKILL", child)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	return nil
}

// freeze SIGSTOPs the process and its direct children: it stays up, its
// sockets open, and answers nothing, as a server whose host froze or whose
// network dropped every packet. The parent stops first so that it cannot
// fork a child we miss.
func (p *process) freeze() error {
	if p.exited() {
		return errors.New("not running")
	}
	pid := p.pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("SIGSTOP %d: %w", pid, err)
	}
	for _, child := range childrenOf(pid) {
		_ = syscall.Kill(child, syscall.SIGSTOP) // one exiting now is gone anyway
	}
	return nil
}

// thaw SIGCONTs what freeze stopped (children first, so that the parent
// finds them running); on a process not frozen it does nothing.
func (p *process) thaw() {
	if p.exited() {
		return
	}
	pid := p.pid()
	for _, child := range childrenOf(pid) {
		_ = syscall.Kill(child, syscall.SIGCONT)
	}
	_ = syscall.Kill(pid, syscall.SIGCONT)
}

// processGone reports whether pid no longer runs. A zombie counts as gone:
// the children we kill are reparented to PID 1, which may never reap them.
func processGone(pid int) bool {
	state, ok := procState(pid)
	return !ok || state == "Z"
}

// killGroup SIGKILLs the process group led by pgid; ESRCH (group already
// gone) is the normal case and is ignored.
func killGroup(pgid int) {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// childrenOf lists the PIDs whose parent is pid, by scanning /proc.
func childrenOf(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var kids []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if fields := procStat(child); len(fields) >= 2 && fields[1] == strconv.Itoa(pid) {
			kids = append(kids, child)
		}
	}
	return kids
}

// procStat returns the fields of /proc/PID/stat after the command name:
// state, ppid, ... It returns nil if the process does not exist.
func procStat(pid int) []string {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	// Format: "pid (comm) state ppid ..."; comm may contain spaces and
	// parentheses, so parse after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(stat[i+1:]))
}

// procState returns the process state letter ("R", "S", "Z", ...) and
// whether the process exists.
func procState(pid int) (string, bool) {
	fields := procStat(pid)
	if len(fields) == 0 {
		return "", false
	}
	return fields[0], true
}

// exitError describes a process that stopped before becoming ready,
// including the tail of its log, and wraps errPortInUse when the log shows a
// bind failure.
func (p *process) exitError(what string) error {
	tail := logTail(p.logPath, 2048)
	err := fmt.Errorf("%s exited early (%v); log tail:\n%s", what, p.waitErr, tail)
	if strings.Contains(tail, "Address already in use") {
		return fmt.Errorf("%w: %w", errPortInUse, err)
	}
	return err
}

// logTail returns the last n bytes of the file at path, for error messages.
func logTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}

// lookBinary finds name on PATH, or explains how to install it.
func lookBinary(name, pkg string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found: install it with \"apt-get install -y %s\"", name, pkg)
	}
	return path, nil
}
