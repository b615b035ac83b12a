package drills

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

var (
	bin string            // pushpipe, built from this tree in TestMain
	env *pipelinetest.Env // PostgreSQL shared by the drills that do not stop it
)

func TestMain(m *testing.M) {
	var err error
	if bin, err = pipelinetest.BinaryPath(); err != nil {
		fmt.Fprintf(os.Stderr, "drills: %v\n", err)
		os.Exit(1)
	}
	pipelinetest.Main(m, pipelinetest.EnvOptions{Postgres: true}, &env)
}

// parallelDrill lets drill t run alongside the package's other parallel
// drills (t.Parallel). Call it only from a drill whose assertions cannot
// depend on the machine's load: every device reached once (repeats at most
// a killed deliver's in-flight slots), the right counts, the commands'
// output, waits bounded by minutes. Each rig has its own Redis, database,
// ports and processes, so nothing else is shared; such a drill's time is
// mostly an outage waited out (a frozen Redis, a stopped PostgreSQL, a
// provider down), which another's can overlap. A drill that bounds a time
// (a rate, a window around a kill, a cancel before its send_at, how far
// ahead split cuts) stays serial: Go runs a package's serial tests before
// its parallel ones, so it never shares the machine with another drill.
func parallelDrill(t *testing.T) {
	t.Helper()
	t.Parallel()
}

const (
	drillApp       = "drill"
	drillChannel   = "news"
	drillPartition = 8
)

// rigOptions shape one drill's pipeline.
type rigOptions struct {
	// Users are ids 173·(1..Users): spread over every partition, one device
	// each, half iOS and half Android, all subscribed to the drill channel.
	Users       int
	RangeSize   int      // split's subscribers per range (default 500: many entries per campaign)
	OwnPostgres bool     // a PostgreSQL server of its own (the drill stops it)
	TPS         int      // deliver's cluster-wide cap per provider and app
	Fake        []string // extra fakeprovider flags
	Deliver     []string // extra deliver flags
	Split       []string // extra split flags
	// Bin is the pushpipe binary the API and the stages run (default: the
	// one built from this tree); the upgrade drill starts an older release.
	Bin string
	// Security is how Redis is secured (pipelinetest.SecurityAuth or
	// SecurityTLS); default PUSHPIPE_TEST_REDIS, so the whole suite runs
	// against a Redis with a password or over TLS with it set.
	Security string
	// RedisWriteTimeout is the processes' Redis write timeout (through a
	// redis:// URL's write_timeout); default pipeline.NewRedisConfig's.
	RedisWriteTimeout time.Duration
}

// rig is one pipeline: Redis (AOF everysec), PostgreSQL, the fake provider,
// the API and every stage, each a `pushpipe` process.
type rig struct {
	t       testing.TB
	dir     string
	opts    rigOptions
	redis   *pipelinetest.Redis
	pg      *pipelinetest.Postgres
	dbURL   string
	keys    pipeline.Keys
	rdb     rueidis.Client
	env     []string
	token   string // admin token
	apiAddr string
	fake    string // fake provider host:port
	https   *http.Client
	procs   []*proc
	ops     map[string]string // process name → ops address
	tokens  map[string]int64  // device token → user

	// migrated: dbURL is a copy of the migrated template (migratedDatabase),
	// which the processes can start on before `pushpipe migrate` has run.
	migrated bool
}

type proc struct {
	name string
	bin  string
	args []string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func newRig(t testing.TB, opts rigOptions) *rig {
	t.Helper()
	r := &rig{t: t, dir: t.TempDir(), opts: opts, ops: map[string]string{}, token: "drill-admin-token-0123456789abcdef"}
	var err error
	if opts.Security == "" {
		if opts.Security, err = pipelinetest.TestRedisSecurity(); err != nil {
			t.Fatal(err)
		}
	}
	r.redis = pipelinetest.RedisT(t, pipelinetest.RedisOptions{AOF: true, Security: opts.Security})
	switch {
	case opts.OwnPostgres:
		r.pg = pipelinetest.PostgresT(t)
		r.dbURL = pipelinetest.DatabaseT(t, r.pg)
	case opts.Bin != "":
		// An older release migrates its own schema (launch).
		r.pg = env.Postgres
		r.dbURL = pipelinetest.DatabaseT(t, r.pg)
	default:
		r.pg = env.Postgres
		r.dbURL, r.migrated = migratedDatabase(t), true
	}
	r.keys = pipeline.NewKeys("pp", drillPartition)
	c := r.redis.Client
	if r.rdb, err = pipeline.NewRedisConfig(pipeline.RedisConfig{Addr: r.redis.Addr, Username: c.Username, Password: c.Password,
		CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.rdb.Close)
	redisEnv := r.redis.Env()
	if opts.RedisWriteTimeout > 0 { // the last PUSHPIPE_REDIS_ADDR is the one a process sees
		redisEnv = append(redisEnv, "PUSHPIPE_REDIS_ADDR=redis://"+r.redis.Addr+"?write_timeout="+opts.RedisWriteTimeout.String())
	}
	r.launch(redisEnv...)
	return r
}

// migratedDatabase is a database of the shared server already migrated to
// this tree's schema: a copy of the package's template, a fraction of the
// time of migrating each drill's (`pushpipe migrate` in launch then finds
// nothing to apply, and still has to succeed).
func migratedDatabase(t testing.TB) string {
	t.Helper()
	return pipelinetest.MigratedDatabaseT(t, env.Postgres)
}

// launch gives the processes their environment (redisEnv: how they reach
// Redis), migrates and seeds PostgreSQL, and starts the fake provider and
// every stage: newRig's and newClusterRig's common end.
func (r *rig) launch(redisEnv ...string) {
	r.env = append(append(os.Environ(), redisEnv...),
		"PUSHPIPE_DATABASE_URL="+r.dbURL,
		"PUSHPIPE_PARTITIONS="+strconv.Itoa(drillPartition), "PUSHPIPE_PREFIX=pp",
		"PUSHPIPE_LOG_LEVEL=warn", "PUSHPIPE_ADMIN_TOKEN="+r.token,
		"SSL_CERT_FILE="+filepath.Join(r.dir, "fake.pem"))
	r.t.Cleanup(r.stopAll) // registered after the servers: runs before they close

	// The fake provider needs neither Redis nor the database: it starts
	// while the schema is checked and the users are seeded, and is waited
	// for only before deliver, which must trust its certificate. On a copy
	// of the migrated template the API and the other stages start (seconds
	// of a loaded machine, each) while migrate runs (it finds nothing to
	// apply, and still has to succeed) and the users are seeded, which no
	// process reads before a campaign; an unmigrated database (an older
	// release's, or a server of the drill's own) is migrated first, as the
	// processes refuse to start on it.
	r.startFake()
	if !r.migrated {
		r.cliWith(r.pipelineBin(), "migrate")
	}
	r.startStages()
	if r.migrated {
		r.cliWith(r.pipelineBin(), "migrate")
	}
	r.seed()
	r.waitFake()
	r.startDeliver()
	r.waitPipeline()
}

// seed writes the users' devices and subscriptions straight into PostgreSQL.
func (r *rig) seed() {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, r.dbURL)
	if err != nil {
		r.t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		`INSERT INTO devices (app, token, user_id, platform, event_at)
		 SELECT $2, CASE WHEN g % 2 = 0 THEN encode(sha256(('tok' || g)::bytea), 'hex') ELSE 'fcm_' || md5(g::text) END,
		        g * 173, CASE WHEN g % 2 = 0 THEN 1 ELSE 2 END, now()
		 FROM generate_series(1, $1::int) g`,
		`INSERT INTO subscriptions (channel, user_id) SELECT $2, g * 173 FROM generate_series(1, $1::int) g`,
	} {
		arg := drillApp
		if strings.Contains(q, "subscriptions") {
			arg = drillChannel
		}
		if _, err := conn.Exec(ctx, q, r.opts.Users, arg); err != nil {
			r.t.Fatalf("seed: %v", err)
		}
	}
	rows, err := conn.Query(ctx, `SELECT token, user_id FROM devices WHERE app = $1`, drillApp)
	if err != nil {
		r.t.Fatal(err)
	}
	r.tokens = map[string]int64{}
	for rows.Next() {
		var tok string
		var u int64
		if err := rows.Scan(&tok, &u); err != nil {
			r.t.Fatal(err)
		}
		r.tokens[tok] = u
	}
	if err := rows.Err(); err != nil || len(r.tokens) != r.opts.Users {
		r.t.Fatalf("seeded %d devices, want %d: %v", len(r.tokens), r.opts.Users, err)
	}
}

func (r *rig) freeAddr() string { return pipelinetest.FreeAddr(r.t) }

// startFake starts the fake provider; waitFake waits until it serves.
func (r *rig) startFake() {
	r.fake = r.freeAddr()
	cert := filepath.Join(r.dir, "fake.pem")
	r.startWith(bin, "fakeprovider", append([]string{"fakeprovider", "--listen", r.fake, "--cert-out", cert}, r.opts.Fake...)...)
}

func (r *rig) waitFake() {
	cert := filepath.Join(r.dir, "fake.pem")
	r.poll(10*time.Second, "fake provider certificate", func() bool {
		st, err := os.Stat(cert)
		return err == nil && st.Size() > 0
	})
	pemBytes, err := os.ReadFile(cert)
	if err != nil {
		r.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	r.https = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	r.poll(10*time.Second, "fake provider", func() bool {
		_, err := r.summary()
		return err == nil
	})
}

// startPipeline starts the API and every stage, and waits until all are ready.
func (r *rig) startPipeline() {
	r.startStages()
	r.startDeliver()
	r.waitPipeline()
}

// stageArgs are every stage's flags: claims and shutdowns short, for drills.
var stageArgs = []string{"--claim-idle", "3s", "--shutdown-timeout", "5s"}

// startStages starts the API and every stage but deliver, without waiting
// for them.
func (r *rig) startStages() {
	r.apiAddr = r.freeAddr()
	r.ops["api"] = r.freeAddr()
	r.start("api", "api", "--listen", r.apiAddr, "--http", r.ops["api"])
	for _, name := range []string{"ingest", "split", "resolve", "dedupe"} {
		r.ops[name] = r.freeAddr()
		args := append([]string{name, "--http", r.ops[name], "--consumer", name + "-1"}, stageArgs...)
		if name == "split" {
			args = append(args, "--range-size", strconv.Itoa(cmp.Or(r.opts.RangeSize, 500)))
			args = append(args, r.opts.Split...)
		}
		r.start(name, args...)
	}
}

// startDeliver starts deliver, sending to the fake provider (started and
// serving: waitFake), without waiting for it.
func (r *rig) startDeliver() {
	r.ops["deliver"] = r.freeAddr()
	args := append([]string{"deliver", "--http", r.ops["deliver"], "--consumer", "deliver-1"}, stageArgs...)
	args = append(args, "--tps", strconv.Itoa(r.opts.TPS),
		"--apns-key", r.apnsKey(), "--apns-key-id", "DRILLKEY01", "--apns-team-id", "DRILLTEAM1", "--apns-topic", drillApp,
		"--apns-host", "https://"+r.fake, "--fcm-project", "drill", "--fcm-endpoint", "https://"+r.fake+"/v1")
	r.start("deliver", append(args, r.opts.Deliver...)...)
}

// waitPipeline waits until the API and every stage are ready.
func (r *rig) waitPipeline() {
	for name, addr := range r.ops {
		r.poll(30*time.Second, name+" /readyz", func() bool {
			resp, err := http.Get("http://" + addr + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
}

// apnsKey writes a throwaway ES256 signing key (.p8) for deliver's APNs client.
func (r *rig) apnsKey() string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		r.t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		r.t.Fatal(err)
	}
	path := filepath.Join(r.dir, "apns.p8")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return path
}

// waitThirdSent waits until the fake provider has accepted a third of the
// users: the moment the drills break something mid-campaign.
func (r *rig) waitThirdSent() {
	r.poll(60*time.Second, "a third of the campaign sent", func() bool {
		s, err := r.summary()
		return err == nil && s.Accepted >= uint64(r.opts.Users/3)
	})
}

// pipelineBin is the binary the API and the stages run.
func (r *rig) pipelineBin() string { return cmp.Or(r.opts.Bin, bin) }

// start runs a pushpipe process of the pipeline's binary in the background,
// its output in a log file.
func (r *rig) start(name string, args ...string) *proc {
	r.t.Helper()
	return r.startWith(r.pipelineBin(), name, args...)
}

// startWith is start with a given pushpipe binary.
func (r *rig) startWith(binary, name string, args ...string) *proc {
	r.t.Helper()
	p := &proc{name: name, bin: binary, args: args, log: filepath.Join(r.dir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		r.t.Fatal(err)
	}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Env = r.env
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		r.t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	r.procs = append(r.procs, p)
	return p
}

// stopAll sends SIGTERM to every process, newest first, and SIGKILL to any
// still running after 15 s; a process that exited non-zero on SIGTERM fails
// the test (DESIGN: SIGTERM → exit 0).
func (r *rig) stopAll() {
	for i := len(r.procs) - 1; i >= 0; i-- {
		p := r.procs[i]
		select {
		case <-p.done:
			continue // already gone; the drill reported it if it mattered
		default:
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			if p.err != nil {
				r.t.Errorf("%s exited with %v on SIGTERM; log tail:\n%s", p.name, p.err, tail(p.log, 1500))
			}
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
			r.t.Errorf("%s ignored SIGTERM for 15 s", p.name)
		}
	}
	r.procs = nil
}

// stop sends SIGTERM to a running process and waits for it (exit 0 expected).
func (r *rig) stop(name string) *proc {
	r.t.Helper()
	for i, p := range r.procs {
		if p.name != name {
			continue
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
		if p.err != nil {
			r.t.Fatalf("%s exited with %v on SIGTERM", name, p.err)
		}
		r.procs = append(r.procs[:i], r.procs[i+1:]...)
		return p
	}
	r.t.Fatalf("no process %s", name)
	return nil
}

// restart starts a stopped process again with its arguments and waits until
// it is ready.
func (r *rig) restart(p *proc) {
	r.t.Helper()
	r.startWith(p.bin, p.name, p.args...)
	r.waitReady(p.name)
}

// waitReady waits until the named process's /readyz answers 200.
func (r *rig) waitReady(name string) {
	r.t.Helper()
	r.poll(30*time.Second, name+" /readyz", func() bool {
		resp, err := http.Get("http://" + r.ops[name] + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// startTwin starts a second process of stage name ("name-2"), with the
// first one's flags but its own consumer and --http address, and waits
// until it is ready.
func (r *rig) startTwin(name string) {
	r.t.Helper()
	twin := name + "-2"
	args := slices.Clone(r.procArgs(name))
	r.ops[twin] = r.freeAddr()
	for i := 1; i < len(args); i++ {
		switch args[i-1] {
		case "--http":
			args[i] = r.ops[twin]
		case "--consumer":
			args[i] = twin
		}
	}
	r.start(twin, args...)
	r.waitReady(twin)
}

// procArgs are the arguments a running process of the rig was started with.
func (r *rig) procArgs(name string) []string {
	r.t.Helper()
	for _, p := range r.procs {
		if p.name == name {
			return p.args
		}
	}
	r.t.Fatalf("no process %s", name)
	return nil
}

// cli runs a pushpipe command to completion and returns its stdout.
func (r *rig) cli(args ...string) string {
	r.t.Helper()
	return r.cliWith(bin, args...)
}

// cliWith is cli with a given pushpipe binary.
func (r *rig) cliWith(binary string, args ...string) string {
	r.t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = r.env, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		r.t.Fatalf("pushpipe %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// poll waits for cond, dumping every process's log tail on timeout.
func (r *rig) poll(timeout time.Duration, what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		for _, p := range r.procs {
			select {
			case <-p.done:
				r.t.Fatalf("%s exited (%v) while waiting for %s; log tail:\n%s", p.name, p.err, what, tail(p.log, 3000))
			default:
			}
		}
		if time.Now().After(deadline) {
			r.diagnose()
			r.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *rig) diagnose() {
	var b strings.Builder
	if sum, err := r.summary(); err == nil {
		fmt.Fprintf(&b, "provider: %+v\n", sum)
	}
	cmd := exec.Command(bin, "status", "-d")
	cmd.Env = r.env
	out, _ := cmd.CombinedOutput()
	b.Write(out)
	for _, p := range r.procs {
		fmt.Fprintf(&b, "--- %s log tail:\n%s\n", p.name, tail(p.log, 1500))
	}
	r.t.Log(b.String())
}

func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	st, _ := f.Stat()
	if st.Size() > n {
		f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// createCampaign posts a campaign to every subscriber of the drill channel.
func (r *rig) createCampaign(id string) {
	r.t.Helper()
	body := fmt.Sprintf(`{"id":%q,"app":%q,"channels":[%q],"notification":{"title":"Drill","body":"%s"}}`, id, drillApp, drillChannel, id)
	req, _ := http.NewRequest(http.MethodPost, "http://"+r.apiAddr+"/v1/campaigns", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		r.t.Fatalf("POST /v1/campaigns: %s %s", resp.Status, b)
	}
}

// progress is GET /v1/campaigns/{id}.
type progress struct {
	State                string `json:"state"`
	Targets              int64  `json:"targets"`
	Sent                 int64  `json:"sent"`
	Failed               int64  `json:"failed"`
	DuplicatesSuppressed int64  `json:"duplicates_suppressed"`
	Muted                int64  `json:"muted"`
}

func (r *rig) progress(id string) (progress, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.apiAddr+"/v1/campaigns/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return progress{}, err
	}
	defer resp.Body.Close()
	var p progress
	if resp.StatusCode != http.StatusOK {
		return p, fmt.Errorf("GET campaign: %s", resp.Status)
	}
	return p, json.NewDecoder(resp.Body).Decode(&p)
}

func (r *rig) waitDone(id string, timeout time.Duration) progress {
	r.t.Helper()
	var p progress
	r.poll(timeout, "campaign "+id+" done", func() bool {
		var err error
		p, err = r.progress(id)
		return err == nil && p.State == "done"
	})
	return p
}

// summary is the fake provider's receipt counters.
type summary struct {
	Accepted     uint64            `json:"accepted"`
	Unique       uint64            `json:"unique"`
	Duplicates   uint64            `json:"duplicates"`
	OverTPS      uint64            `json:"rejected_over_tps"`
	Errors       uint64            `json:"errors"`
	ByCollapseID map[string]uint64 `json:"by_collapse_id"`
}

func (r *rig) summary() (summary, error) {
	var s summary
	resp, err := r.https.Get("https://" + r.fake + "/_receipts/summary")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

type receipt struct {
	Token      string `json:"token"`
	CollapseID string `json:"collapse_id"`
	AtMs       int64  `json:"at_ms"`
}

func (r *rig) receipts() []receipt {
	r.t.Helper()
	resp, err := r.https.Get("https://" + r.fake + "/_receipts")
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []receipt
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var rc receipt
		if err := json.Unmarshal(sc.Bytes(), &rc); err != nil {
			r.t.Fatal(err)
		}
		out = append(out, rc)
	}
	if err := sc.Err(); err != nil {
		r.t.Fatal(err)
	}
	return out
}

// pipelineIdle: no stage has anything unread or pending, and deliver's
// delayed-retry sets are empty.
func (r *rig) pipelineIdle() bool {
	ctx := context.Background()
	for stream, group := range map[string]string{
		pipeline.StreamCampaigns: "split", pipeline.StreamRanges: "resolve",
		pipeline.StreamDedupe: "dedupe", pipeline.StreamDeliver: "deliver",
	} {
		n, err := pipeline.Outstanding(ctx, r.rdb, r.keys.Streams(stream), group)
		if err != nil || n != 0 {
			return false
		}
	}
	for p := range drillPartition {
		n, err := r.rdb.Do(ctx, r.rdb.B().Zcard().Key(pipeline.DelayedKey(r.keys.Stream(pipeline.StreamDeliver, p))).Build()).AsInt64()
		if err != nil || n != 0 {
			return false
		}
	}
	return true
}

// settle waits until the pipeline is idle and the provider has seen nothing
// new for a while, and returns the provider's counters then.
func (r *rig) settle() summary {
	r.t.Helper()
	var last summary
	stable := time.Time{}
	r.poll(60*time.Second, "pipeline idle", func() bool {
		s, err := r.summary()
		if err != nil || !r.pipelineIdle() {
			stable = time.Time{}
			return false
		}
		if s.Accepted != last.Accepted || stable.IsZero() {
			last, stable = s, time.Now()
			return false
		}
		return time.Since(stable) > 500*time.Millisecond
	})
	return last
}

// checkEveryoneOnce fails unless every seeded device was accepted exactly
// doneEachOnce waits for campaign id to be done, then checks eachOnce.
func (r *rig) doneEachOnce(id string) (progress, summary) {
	return r.waitDone(id, 120*time.Second), r.eachOnce(id)
}

// eachOnce waits for the provider to settle and checks that every user was
// reached by campaign id exactly once: what an outage that lost no write
// must leave.
func (r *rig) eachOnce(id string) summary {
	sum := r.settle()
	r.checkReached(r.receipts(), id)
	if sum.Duplicates != 0 || sum.Unique != uint64(r.opts.Users) {
		r.t.Errorf("provider: %d unique, %d duplicates; want %d and 0", sum.Unique, sum.Duplicates, r.opts.Users)
	}
	return sum
}

// once (want dups = 0) and every receipt carries the campaign's collapse id.
func (r *rig) checkReached(recs []receipt, collapseID string) (perToken map[string]int) {
	r.t.Helper()
	perToken = map[string]int{}
	for _, rc := range recs {
		if _, ok := r.tokens[rc.Token]; !ok {
			r.t.Errorf("provider accepted unknown token %q", rc.Token)
		}
		if rc.CollapseID != collapseID {
			r.t.Errorf("token %s sent with collapse id %q, want %q", rc.Token, rc.CollapseID, collapseID)
		}
		perToken[rc.Token]++
	}
	missing := 0
	for tok := range r.tokens {
		if perToken[tok] == 0 {
			missing++
		}
	}
	if missing > 0 {
		r.t.Errorf("%d of %d devices never reached", missing, len(r.tokens))
	}
	return perToken
}
