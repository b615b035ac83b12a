package localserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	postgresReadyTimeout = 30 * time.Second
	postgresStopTimeout  = 30 * time.Second
	postgresInstall      = `postgres not found: install it with "apt-get install -y postgresql"`
)

// PostgresOptions configures StartPostgres.
type PostgresOptions struct {
	// Durable keeps fsync, synchronous_commit and full_page_writes on. By
	// default they are off: tests do not survive power loss anyway, and
	// durability makes every commit wait for the disk.
	Durable bool
	// Settings are extra server settings passed as -c name=value; they
	// override the defaults set here.
	Settings map[string]string
	// Dir keeps the server's files (data/, postgres.log, the socket) in this
	// directory instead of a temporary one: an existing cluster in it is
	// started again with its data (`pushpipe dev`), and Close keeps it.
	// As root the server runs as user postgres, which must be able to
	// enter every parent of Dir (so not under /root or a 0700 mktemp -d
	// dir); Dir itself is given to that user, 0700.
	Dir string
	// Port is tried first (see RedisOptions.Port); when it is taken or 0,
	// a free port.
	Port int
}

// Postgres is a PostgreSQL server child process listening on 127.0.0.1
// only, with trust authentication for the superuser "postgres": any local
// user can connect as superuser (fine for tests and `pushpipe dev`, not for
// anything shared). Its files are its owner's only: the directory is 0700,
// the data files 0600 (PostgreSQL's own umask), the log 0600.
type Postgres struct {
	URL  string // postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
	Dir  string // temp dir: data/, postgres.log and the unix socket
	Port int

	dataDir  string
	bin      string
	cred     *syscall.Credential // non-nil when running as root
	settings map[string]string
	proc     *process
	ownsDir  bool
	dbSeq    atomic.Int64 // NewDatabase may be called from parallel tests

	templatesMu sync.Mutex
	templates   map[string]*template // NewDatabaseFrom's, by key
}

// StartPostgres runs initdb in a new temporary directory and starts the
// server on a free port. Each call costs about a second; tests in one
// package should share a server and use NewDatabase for isolation.
func StartPostgres(opts PostgresOptions) (*Postgres, error) {
	p, err := startPostgres(opts)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	return p, nil
}

func startPostgres(opts PostgresOptions) (*Postgres, error) {
	binDir, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	// As root, the server runs as "postgres", which must be able to reach
	// the directory: /tmp is world-searchable, $TMPDIR may not be (and the
	// checkout we run from may be under /root or a 0700 mktemp dir).
	parent := ""
	if cred != nil {
		parent = "/tmp"
	}
	dir, owned := opts.Dir, opts.Dir == ""
	if owned {
		dir, err = os.MkdirTemp(parent, "pipelinetest-pg-*")
	} else if dir, err = filepath.Abs(dir); err == nil {
		err = os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if cred != nil {
		err := os.Chown(dir, int(cred.Uid), int(cred.Gid))
		if err == nil {
			err = os.Chmod(dir, 0o700)
		}
		if err != nil {
			return nil, errors.Join(fmt.Errorf("give %s to user postgres: %w", dir, err), cleanupDir(dir, owned))
		}
	}
	initdb := filepath.Join(binDir, "initdb")
	if err := reachable(dir, initdb, cred); err != nil {
		return nil, errors.Join(err, cleanupDir(dir, owned))
	}
	p := &Postgres{
		Dir:      dir,
		dataDir:  filepath.Join(dir, "data"),
		bin:      filepath.Join(binDir, "postgres"),
		cred:     cred,
		settings: postgresSettings(dir, opts),
		ownsDir:  owned,
	}
	if !isFile(filepath.Join(p.dataDir, "PG_VERSION")) {
		if err := p.initdb(initdb, opts.Durable); err != nil {
			return nil, errors.Join(p.explain(err, false), cleanupDir(dir, owned))
		}
	}
	for attempt := 1; ; attempt++ {
		p.Port = opts.Port
		if attempt > 1 || p.Port == 0 {
			p.Port, err = FreePort()
		}
		if err != nil {
			return nil, errors.Join(err, cleanupDir(dir, owned))
		}
		p.URL = p.databaseURL("postgres")
		err = p.start()
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, errPortInUse) || attempt == startAttempts {
			return nil, errors.Join(p.explain(err, true), cleanupDir(dir, owned))
		}
	}
}

// postgresSettings merges the defaults with opts.Settings. The port is not
// included: it changes when a start attempt loses a port race.
func postgresSettings(dir string, opts PostgresOptions) map[string]string {
	s := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": dir,
		"max_connections":         "200",
	}
	if !opts.Durable {
		s["fsync"] = "off"
		s["synchronous_commit"] = "off"
		s["full_page_writes"] = "off"
	}
	for k, v := range opts.Settings {
		s[k] = v
	}
	return s
}

func (p *Postgres) initdb(bin string, durable bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := []string{"-D", p.dataDir, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"}
	if !durable {
		args = append(args, "--no-sync") // skip fsyncing ~40 MB of catalog files
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = p.Dir // the postgres user may not be able to enter our cwd
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		// It never ran: fork/exec reports a chdir it could not do as the
		// binary's "permission denied".
		return fmt.Errorf("initdb could not be started as %s with %s as working directory: %w", runsAs(p.cred), p.Dir, err)
	}
	if len(out) > 2048 {
		out = out[len(out)-2048:]
	}
	return fmt.Errorf("initdb: %w; output tail:\n%s", err, bytes.TrimSpace(out))
}

func (p *Postgres) databaseURL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, name)
}

// start launches the server on p.Port and waits until it accepts queries.
func (p *Postgres) start() error {
	args := []string{"-D", p.dataDir, "-c", "port=" + strconv.Itoa(p.Port)}
	keys := make([]string, 0, len(p.settings))
	for k := range p.settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+p.settings[k])
	}
	proc, err := startProcess(p.Dir, filepath.Join(p.Dir, "postgres.log"), p.cred, p.bin, args...)
	if err != nil {
		return err
	}
	p.proc = proc
	if err := p.waitReady(postgresReadyTimeout); err != nil {
		return errors.Join(err, proc.kill())
	}
	return nil
}

// waitReady connects until the server accepts queries, and checks that it
// serves our data directory: if another server took the port, ours is
// about to exit with a bind error.
func (p *Postgres) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if p.proc.exited() {
			return p.proc.exitError("postgres")
		}
		err := p.checkDataDir()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres on port %d not ready after %v: %w; log tail:\n%s",
				p.Port, timeout, err, logTail(p.proc.logPath, 2048))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *Postgres) checkDataDir() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.URL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var dataDir string
	if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&dataDir); err != nil {
		return err
	}
	if filepath.Clean(dataDir) != p.dataDir {
		return fmt.Errorf("port %d is served by %s: %w", p.Port, dataDir, errPortInUse)
	}
	return nil
}

// Stop shuts the server down cleanly (fast shutdown: open sessions are
// terminated, a checkpoint is written) and waits for it to exit.
func (p *Postgres) Stop() error {
	p.proc.thaw() // a frozen server would not see the signal
	if err := p.proc.stop(syscall.SIGINT, postgresStopTimeout); err != nil {
		return fmt.Errorf("stop postgres: %w", err)
	}
	return nil
}

// Freeze stops the server and its backends where they are (SIGSTOP): its
// connections stay open and nothing answers, neither a query nor a new
// connection's handshake, as in a failover whose old primary hangs rather
// than refuses. Thaw lets it go on.
func (p *Postgres) Freeze() error {
	if err := p.proc.freeze(); err != nil {
		return fmt.Errorf("freeze postgres: %w", err)
	}
	return nil
}

// Thaw lets a frozen server go on where it stopped.
func (p *Postgres) Thaw() { p.proc.thaw() }

// Kill SIGKILLs the server and its backends (a crash drill); the next Start
// runs crash recovery.
func (p *Postgres) Kill() error {
	if err := p.proc.kill(); err != nil {
		return fmt.Errorf("kill postgres: %w", err)
	}
	return nil
}

// Start starts a stopped server again with the same port and data.
func (p *Postgres) Start() error {
	if !p.proc.exited() {
		return errors.New("start postgres: already running")
	}
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		if err = p.start(); !errors.Is(err, errPortInUse) {
			break
		}
		// The port is fixed now, so all we can do is wait for it.
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	return nil
}

// Close stops the server and removes its directory (unless it was
// PostgresOptions.Dir).
func (p *Postgres) Close() error {
	err := p.Stop()
	return errors.Join(err, cleanupDir(p.Dir, p.ownsDir))
}
