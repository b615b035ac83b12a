package localserver

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	redisReadyTimeout = 10 * time.Second
	// A restart may have to replay a large AOF written by a benchmark.
	redisReloadTimeout = 60 * time.Second
	startAttempts      = 5
)

// RedisOptions configures StartRedis.
type RedisOptions struct {
	// AOF turns on appendonly with appendfsync everysec, so that writes
	// older than about a second survive Kill+Restart.
	AOF bool
	// Dir is the data directory. If empty, a temporary directory is
	// created and removed by Close; a caller-provided Dir is kept. Either
	// way it is made 0700 and its files 0600.
	Dir string
	// Security is "" (no password, loopback only), SecurityAuth or
	// SecurityTLS; Redis.Client then says how to connect.
	Security string
	// Port is tried first (pushpipe dev keeps its ports across runs, so a
	// shell that sourced its addresses still reaches it); when it is taken
	// or 0, a free port.
	Port int
}

// Redis is a redis-server child process listening on 127.0.0.1 only,
// without a password: any local user can connect to it (fine for tests and
// `pushpipe dev`, not for anything shared). Its files are its owner's only:
// the directory is 0700, the AOF, RDB and log 0600.
type Redis struct {
	Addr string // "127.0.0.1:PORT"
	Dir  string
	Port int
	// Client is what a client needs besides Addr (Security; empty without).
	Client ClientAuth

	admin ClientAuth // how the readiness checks connect

	bin     string
	args    []string // the full command line, reused by Restart
	ownsDir bool
	proc    *process
}

// StartRedis starts a standalone redis-server on a free port and waits
// until it answers PING.
func StartRedis(opts RedisOptions) (*Redis, error) {
	r, err := startRedis(opts, nil)
	if err != nil {
		return nil, fmt.Errorf("start redis: %w", err)
	}
	return r, nil
}

// startRedis starts redis-server, retrying on a new port when the bind
// fails. extra, if set, returns additional arguments for a given port (the
// cluster bus port must be chosen per attempt too).
func startRedis(opts RedisOptions, extra func(port int) ([]string, error)) (*Redis, error) {
	bin, err := lookBinary("redis-server", "redis-server")
	if err != nil {
		return nil, err
	}
	dir, ownsDir := opts.Dir, opts.Dir == ""
	if ownsDir {
		if dir, err = os.MkdirTemp("", "pipelinetest-redis-*"); err != nil {
			return nil, fmt.Errorf("temp dir: %w", err)
		}
	} else if err := privateDir(dir); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	for attempt := 1; ; attempt++ {
		port, err := opts.Port, error(nil)
		if attempt > 1 || port == 0 {
			port, err = FreePort()
		}
		if err != nil {
			return nil, errors.Join(err, cleanupDir(dir, ownsDir))
		}
		// No password: loopback only, and protected mode on as well,
		// which refuses any non-loopback client of a passwordless server.
		r := &Redis{
			Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Dir:  dir, Port: port,
			bin: bin, ownsDir: ownsDir,
		}
		ports, err := r.secureArgs(opts.Security, port)
		if err != nil {
			return nil, errors.Join(err, cleanupDir(dir, ownsDir))
		}
		args := append([]string{
			"--bind", "127.0.0.1",
			"--dir", dir, "--save", "", "--protected-mode", "yes",
		}, ports...)
		if opts.AOF {
			args = append(args, "--appendonly", "yes", "--appendfsync", "everysec")
		} else {
			args = append(args, "--appendonly", "no")
		}
		if extra != nil {
			more, err := extra(port)
			if err != nil {
				return nil, errors.Join(err, cleanupDir(dir, ownsDir))
			}
			args = append(args, more...)
		}
		r.args = args
		err = r.start(redisReadyTimeout)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, errPortInUse) || attempt == startAttempts {
			return nil, errors.Join(err, cleanupDir(dir, ownsDir))
		}
	}
}

// redisUmask is how redis-server is started: through sh, which sets umask
// 077 and execs it (same pid), so that the AOF and RDB files it creates,
// which hold device tokens, are 0600. redis-server has no umask setting,
// and changing ours would race with every other goroutine's files.
const redisUmask = `umask 077 && exec "$0" "$@"`

// start launches the server with r.args and waits for it to be ready.
func (r *Redis) start(timeout time.Duration) error {
	args := append([]string{"-c", redisUmask, r.bin}, r.args...)
	p, err := startProcess(r.Dir, filepath.Join(r.Dir, "redis.log"), nil, "/bin/sh", args...)
	if err != nil {
		return err
	}
	r.proc = p
	if err := r.waitReady(timeout); err != nil {
		return errors.Join(err, p.kill())
	}
	return nil
}

// waitReady polls PING until it returns PONG; while an AOF is loading,
// PING fails with -LOADING. It then checks that the server answering is
// ours: if another process took the port, our server is about to exit
// with a bind error, and PONG came from the intruder.
func (r *Redis) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if r.proc.exited() {
			return r.proc.exitError("redis-server")
		}
		_, err := r.dial().do(r.Addr, time.Second, "PING")
		if err == nil {
			err = r.checkPID()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s not ready after %v: %w; log tail:\n%s",
				r.Addr, timeout, err, logTail(r.proc.logPath, 2048))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *Redis) checkPID() error {
	reply, err := r.dial().do(r.Addr, time.Second, "INFO", "server")
	if err != nil {
		return err
	}
	info, _ := reply.(string)
	want := "process_id:" + strconv.Itoa(r.proc.pid()) + "\r\n"
	if !strings.Contains(info, want) {
		return fmt.Errorf("%s is served by another process: %w", r.Addr, errPortInUse)
	}
	return nil
}

// Kill SIGKILLs the server (a crash drill) and waits until it has exited.
// Writes acknowledged in the last second may be lost, as in a real crash.
func (r *Redis) Kill() error {
	if err := r.proc.kill(); err != nil {
		return fmt.Errorf("kill redis %s: %w", r.Addr, err)
	}
	return nil
}

// Freeze stops the server where it is (SIGSTOP): its connections stay
// open and nothing answers, not even a new connection's first command, as a
// primary whose host hangs or whose network drops every packet, rather than
// one that refuses. Thaw lets it go on with every write it had.
func (r *Redis) Freeze() error {
	if err := r.proc.freeze(); err != nil {
		return fmt.Errorf("freeze redis %s: %w", r.Addr, err)
	}
	return nil
}

// Thaw lets a frozen server go on where it stopped.
func (r *Redis) Thaw() { r.proc.thaw() }

// Restart starts the server again on the same port and directory, so an
// AOF instance reloads its data. A server that is still running is killed
// first. It returns once PING answers and loading has finished.
func (r *Redis) Restart() error {
	if err := r.proc.kill(); err != nil {
		return fmt.Errorf("restart redis %s: %w", r.Addr, err)
	}
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		if err = r.start(redisReloadTimeout); !errors.Is(err, errPortInUse) {
			break
		}
		// The port is fixed now, so all we can do is wait for it.
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("restart redis %s: %w", r.Addr, err)
	}
	return nil
}

// Close stops the server (SIGTERM, then SIGKILL after 5 s) and removes
// its directory if StartRedis created it.
func (r *Redis) Close() error {
	r.proc.thaw() // a frozen server would not see the SIGTERM
	err := r.proc.stop(syscall.SIGTERM, 5*time.Second)
	if err != nil {
		err = fmt.Errorf("close redis %s: %w", r.Addr, err)
	}
	return errors.Join(err, cleanupDir(r.Dir, r.ownsDir))
}

// privateDir creates dir, or takes an existing one, readable by its owner
// only (0700), and makes the files already in it 0600: they may be an AOF
// written with a laxer umask by an older version.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Chmod(path, 0o700)
		case d.Type().IsRegular():
			return os.Chmod(path, 0o600)
		}
		return nil
	})
}

// cleanupDir removes dir if we created it.
func cleanupDir(dir string, owned bool) error {
	if !owned {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}
