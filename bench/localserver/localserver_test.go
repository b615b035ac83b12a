package localserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/rueidis"
)

// env is shared by the package's tests, as other packages will use it.
var env *Env

func TestMain(m *testing.M) {
	Main(m, EnvOptions{Postgres: true}, &env)
}

func redisClient(t *testing.T, opt rueidis.ClientOption) rueidis.Client {
	t.Helper()
	opt.DisableCache = true
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatalf("rueidis client %v: %v", opt.InitAddress, err)
	}
	t.Cleanup(c.Close)
	return c
}

func pgConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// gone reports whether pid has exited (a zombie counts as exited: PID 1
// here does not reap orphans).
func gone(pid int) bool { return processGone(pid) }

func TestRedisSetGet(t *testing.T) {
	t.Parallel()
	r, err := StartRedis(RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pid, dir := r.proc.pid(), r.Dir
	c := redisClient(t, rueidis.ClientOption{InitAddress: []string{r.Addr}})
	ctx := t.Context()
	if err := c.Do(ctx, c.B().Set().Key("k").Value("v").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Do(ctx, c.B().Get().Key("k").Build()).ToString(); err != nil || got != "v" {
		t.Fatalf("GET k = %q, %v; want v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "redis.log")); err != nil {
		t.Errorf("server log: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if !gone(pid) {
		t.Errorf("redis-server pid %d still running after Close", pid)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp dir %s not removed: %v", dir, err)
	}
}

func TestRedisAOFKillRestart(t *testing.T) {
	t.Parallel()
	r := started[*Redis](t)(StartRedis(RedisOptions{AOF: true}))
	ctx := t.Context()
	// A client of its own on each side of the kill: the test is about the
	// AOF, and a client carried across the kill retries its commands on a
	// new connection while the dead one's writer may still read them, which
	// the race detector reports (inside rueidis) against whichever test
	// reuses that pooled command next.
	c := redisClient(t, rueidis.ClientOption{InitAddress: []string{r.Addr}})
	if err := c.Do(ctx, c.B().Set().Key("durable").Value("yes").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	time.Sleep(1200 * time.Millisecond) // appendfsync everysec
	pid, addr := r.proc.pid(), r.Addr
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	if !gone(pid) {
		t.Fatalf("pid %d still running after Kill", pid)
	}
	if _, err := redisDo(addr, time.Second, "PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	if r.Addr != addr {
		t.Fatalf("Restart moved the server from %s to %s", addr, r.Addr)
	}
	// Restart returns once PING answers PONG, so the AOF is loaded.
	c = redisClient(t, rueidis.ClientOption{InitAddress: []string{r.Addr}})
	got, err := c.Do(ctx, c.B().Get().Key("durable").Build()).ToString()
	if got != "yes" {
		t.Fatalf("after restart GET durable = %q, %v; want yes", got, err)
	}
}

// TestRedisFilesArePrivate checks what `pushpipe dev` relies on for its
// AOF, which holds device tokens: loopback only, protected mode, a 0700
// directory and 0600 files, including those an older version left 0644.
func TestRedisFilesArePrivate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "redis")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "old.aof"), []byte("*1\r\n$4\r\nPING\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := started[*Redis](t)(StartRedis(RedisOptions{AOF: true, Dir: dir}))
	for _, kv := range [][2]string{{"bind", "127.0.0.1"}, {"protected-mode", "yes"}} {
		reply, err := redisDo(r.Addr, time.Second, "CONFIG", "GET", kv[0])
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(reply); !strings.Contains(got, kv[1]) {
			t.Errorf("CONFIG GET %s = %s, want %s", kv[0], got, kv[1])
		}
	}
	if _, err := redisDo(r.Addr, time.Second, "SET", "token", "secret"); err != nil {
		t.Fatal(err)
	}
	files := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files++
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 3 { // old.aof, redis.log, and the AOF's base and manifest
		t.Errorf("only %d files in %s: did the AOF go elsewhere?", files, dir)
	}
}

// TestPostgresClosedParentSaysWhatToDo: as root, PostgreSQL runs as user
// postgres; a directory under a parent closed to that user (a clone in a
// 0700 mktemp -d dir) must fail at once with a message naming the user and
// the parent, not initdb's "fork/exec .../initdb: permission denied".
func TestPostgresClosedParentSaysWhatToDo(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("only root runs PostgreSQL as another user")
	}
	// Not t.TempDir(): its parent is 0700 as well, and /tmp is open.
	closed, err := os.MkdirTemp("/tmp", "pipelinetest-closed-*") // 0700
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(closed) })
	dir := filepath.Join(closed, "clone", ".pushpipe", "postgres")
	start := time.Now()
	p, err := StartPostgres(PostgresOptions{Dir: dir})
	if err == nil {
		p.Close()
		t.Fatalf("started in %s, under the 0700 %s", dir, closed)
	}
	for _, want := range []string{"user postgres", "cannot enter " + closed + " (mode 0700", dir, "chmod o+x " + closed} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	// No initdb run: the refusal is reachable()'s, before it, and says
	// nothing of initdb (whose failure would: "initdb could not be
	// started ..."). The time is a hang guard; initdb's would be seconds.
	if strings.Contains(err.Error(), "initdb") {
		t.Errorf("refused by initdb, not before it:\n%v", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("took %v to refuse; want no initdb run", took)
	}
}

// TestRedisPortInUse checks that a bind failure is recognised, which is
// what makes the Start functions retry on another port.
func TestRedisPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	bin, err := lookBinary("redis-server", "redis-server")
	if err != nil {
		t.Fatal(err)
	}
	r := &Redis{
		Addr: l.Addr().String(), Dir: dir, Port: port, bin: bin,
		args: []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir, "--save", ""},
	}
	err = r.start(redisReadyTimeout)
	if !errors.Is(err, errPortInUse) {
		t.Fatalf("start on a taken port: got %v, want errPortInUse", err)
	}
}

func TestMissingBinaryNamesInstallCommand(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := StartRedis(RedisOptions{})
	if err == nil || !strings.Contains(err.Error(), `apt-get install -y redis-server`) {
		t.Fatalf("StartRedis without redis-server: %v", err)
	}
	_, err = StartCluster(3)
	if err == nil || !strings.Contains(err.Error(), `apt-get install -y redis-tools`) {
		t.Fatalf("StartCluster without redis-cli: %v", err)
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := started[*Cluster](t)(StartCluster(ClusterMasters))
	t.Logf("cluster of %d masters ready in %v", len(c.Addrs), time.Since(start).Round(time.Millisecond))
	if len(c.Addrs) != 3 {
		t.Fatalf("Addrs = %v, want 3", c.Addrs)
	}
	ctx := t.Context()
	client := redisClient(t, rueidis.ClientOption{InitAddress: c.Addrs})

	// Which master owns each slot, according to the cluster client's node.
	slots, err := client.Do(ctx, client.B().ClusterSlots().Build()).ToArray()
	if err != nil {
		t.Fatal(err)
	}
	owner := make(map[int64]string, clusterSlots)
	owned := map[string]int64{}
	for _, s := range slots {
		r, _ := s.ToArray()
		lo, _ := r[0].AsInt64()
		hi, _ := r[1].AsInt64()
		node, _ := r[2].ToArray()
		port, _ := node[1].AsInt64()
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		for slot := lo; slot <= hi; slot++ {
			owner[slot] = addr
		}
		owned[addr] += hi - lo + 1
	}
	for _, addr := range c.Addrs {
		if owned[addr] == 0 {
			t.Errorf("master %s owns no slots (%v)", addr, owned)
		}
	}

	// Write one key per master through the cluster client, then read it
	// back from that master directly: a key on the wrong node would MOVED.
	keyFor := map[string]string{}
	for i := 0; len(keyFor) < len(c.Addrs) && i < 1000; i++ {
		key := fmt.Sprintf("k:{%d}", i)
		slot, err := client.Do(ctx, client.B().ClusterKeyslot().Key(key).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := keyFor[owner[slot]]; !ok {
			keyFor[owner[slot]] = key
		}
	}
	for _, addr := range c.Addrs {
		key := keyFor[addr]
		if err := client.Do(ctx, client.B().Set().Key(key).Value(addr).Build()).Error(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		node := redisClient(t, rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true})
		got, err := node.Do(ctx, node.B().Get().Key(key).Build()).ToString()
		if err != nil || got != addr {
			t.Errorf("GET %s on %s = %q, %v", key, addr, got, err)
		}
	}
}

func TestPostgresDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	p := env.Postgres
	ctx := t.Context()
	db1 := pgConn(t, database(t, p))
	db2 := pgConn(t, database(t, p))

	if _, err := db1.Exec(ctx, `CREATE TABLE items (id bigint PRIMARY KEY, name text)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db1.Exec(ctx, `INSERT INTO items VALUES (1, 'one'), (2, 'two')`); err != nil {
		t.Fatal(err)
	}
	var name string
	if err := db1.QueryRow(ctx, `SELECT name FROM items WHERE id = $1`, 2).Scan(&name); err != nil || name != "two" {
		t.Fatalf("SELECT = %q, %v; want two", name, err)
	}
	var exists bool
	if err := db2.QueryRow(ctx, `SELECT to_regclass('items') IS NOT NULL`).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatal("table created in one NewDatabase database is visible in another")
	}
	var maxConns int
	if err := db2.QueryRow(ctx, `SELECT current_setting('max_connections')::int`).Scan(&maxConns); err != nil || maxConns != 200 {
		t.Fatalf("max_connections = %d, %v; want 200", maxConns, err)
	}
}

func TestPostgresStopStartKill(t *testing.T) {
	t.Parallel()
	p := started[*Postgres](t)(StartPostgres(PostgresOptions{}))
	ctx := t.Context()
	url := database(t, p)
	exec := func(sql string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM kept`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	exec(`CREATE TABLE kept (id int)`)
	exec(`INSERT INTO kept VALUES (1)`)

	port := p.Port
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if conn, err := pgx.Connect(ctx, url); err == nil {
		conn.Close(ctx)
		t.Fatal("connected after Stop")
	}
	// A stopped server has nothing to drop (Close removes its files).
	if err := p.DropDatabase(ctx, url); err != nil {
		t.Fatalf("DropDatabase on a stopped server: %v, want nothing done", err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if p.Port != port {
		t.Fatalf("Start moved the server from port %d to %d", port, p.Port)
	}
	if n := count(); n != 1 {
		t.Fatalf("after Stop+Start: %d rows, want 1", n)
	}

	// Crash drill: keep a backend open so Kill has children to reap.
	held := pgConn(t, url)
	var backend int
	if err := held.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		t.Fatal(err)
	}
	postmaster := p.proc.pid()
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if !gone(postmaster) || !gone(backend) {
		t.Fatalf("after Kill: postmaster %d gone=%v, backend %d gone=%v",
			postmaster, gone(postmaster), backend, gone(backend))
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("after Kill+Start: %d rows, want 1", n)
	}
}

// started fails the test if a server did not start, and closes it at the
// test's cleanup (pipelinetest's RedisT and friends, which this package
// cannot import: pipelinetest imports it).
func started[S interface{ Close() error }](t testing.TB) func(S, error) S {
	return func(s S, err error) S {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		return s
	}
}

// database creates a fresh database on p and returns its URL.
func database(t testing.TB, p *Postgres) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url, err := p.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// FreePort's ports lie below the kernel's ephemeral range, where no
// outgoing connection can take one before the server binds it, and can be
// bound.
func TestFreePortIsBelowEphemeralRange(t *testing.T) {
	lo := ephemeralLow()
	for range 20 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if lo-freePortMin >= 1000 && (port < freePortMin || port >= lo) {
			t.Fatalf("port %d, want one in [%d, %d)", port, freePortMin, lo)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("port %d: %v", port, err)
		}
		l.Close()
	}
}

// A process asks for many ports before binding any: drawn at random, 1,000
// of them would hold ~20 repeats. (Not more: the draws stay handed out for
// the process's life, and -count runs this again in the same process.)
func TestFreePortNeverRepeats(t *testing.T) {
	seen := map[int]bool{}
	for range 1000 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
	}
}

// TestPostgresFreeze: a frozen server answers nothing, neither a query on
// an open connection nor a new connection, and goes on once thawed; a
// frozen server still stops.
func TestPostgresFreeze(t *testing.T) {
	t.Parallel()
	p := started[*Postgres](t)(StartPostgres(PostgresOptions{}))
	url := database(t, p)
	used, idle := pgConn(t, url), pgConn(t, url)
	if err := p.Freeze(); err != nil {
		t.Fatal(err)
	}
	// Frozen, nothing answers in 500 ms; thawed, everything answers, in as
	// long as a loaded machine takes to start a backend.
	answers := func(what string, within time.Duration, fn func(ctx context.Context) error) error {
		ctx, cancel := context.WithTimeout(t.Context(), within)
		defer cancel()
		err := fn(ctx)
		t.Logf("%s: %v", what, err)
		return err
	}
	if answers("a query while frozen", 500*time.Millisecond, func(ctx context.Context) error { _, err := used.Exec(ctx, `SELECT 1`); return err }) == nil {
		t.Fatal("a frozen server answered a query")
	}
	if answers("a new connection while frozen", 500*time.Millisecond, func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, url)
		if err == nil {
			c.Close(ctx)
		}
		return err
	}) == nil {
		t.Fatal("a frozen server took a new connection")
	}
	p.Thaw()
	if err := answers("the idle connection once thawed", 30*time.Second, func(ctx context.Context) error { _, err := idle.Exec(ctx, `SELECT 1`); return err }); err != nil {
		t.Fatal(err)
	}
	if err := answers("a new connection once thawed", 30*time.Second, func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, url)
		if err == nil {
			c.Close(ctx)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := p.Freeze(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > postgresStopTimeout {
		t.Errorf("stopping a frozen server took %s: it was killed, not stopped", took)
	}
}

// DropDatabase removes a test's database from a shared server (a copy of a
// template as well as an empty one), refuses one still in use rather than
// end its sessions. TestPostgresStopStartKill drops on a stopped server.
func TestPostgresDropDatabase(t *testing.T) {
	t.Parallel()
	p := env.Postgres
	ctx := t.Context()
	copied, err := p.NewDatabaseFrom(ctx, "drop-test", func(ctx context.Context, url string) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `CREATE TABLE items (id bigint PRIMARY KEY)`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	inUse := database(t, p)
	session := pgConn(t, inUse)
	exists := func(url string) bool {
		t.Helper()
		cfg, err := pgx.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := pgConn(t, p.URL).QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, cfg.Database).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	tests := []struct {
		name    string
		url     string
		wantErr bool
		exists  bool
	}{
		{"empty", database(t, p), false, false},
		{"copy of a template", copied, false, false},
		{"in use", inUse, true, true},
		{"already dropped", copied, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.DropDatabase(ctx, tt.url)
			if (err != nil) != tt.wantErr {
				t.Errorf("drop: %v, want an error: %v", err, tt.wantErr)
			}
			if got := exists(tt.url); got != tt.exists {
				t.Errorf("exists after the drop: %v, want %v", got, tt.exists)
			}
		})
	}
	if err := session.Ping(ctx); err != nil {
		t.Errorf("the session of the database in use was ended: %v", err)
	}
}
