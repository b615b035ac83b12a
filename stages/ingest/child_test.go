package ingest_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/api"
	"github.com/pushpipe/pushpipe/stages/ingest"
)

const childEnv = "PUSHPIPE_INGEST_CHILD"

// childConfig is how the parent test configures a child process: an ingest
// stage (Mode ""), or an HTTP server on a free port, the API ("api", with
// AppKey as the key of stormApp) or the bare 202 handler ("bare").
type childConfig struct {
	Mode, AppKey                         string
	Redis, DB, Prefix, Consumer, AppName string
	DBConns, Batch, Concurrency          int
	ClaimIdle                            time.Duration
	Pause                                time.Duration // random pause after each commit, before the ack
	WaitGo                               bool          // ingest: connect, say "ready", start on child.start()
}

func (c childConfig) environ() []string {
	return append(os.Environ(), childEnv+"="+cmpOr(c.Mode, "ingest"), "CHILD_APP_KEY="+c.AppKey,
		"CHILD_REDIS="+c.Redis, "CHILD_DB="+c.DB, "CHILD_PREFIX="+c.Prefix, "CHILD_CONSUMER="+c.Consumer,
		"CHILD_APPNAME="+c.AppName, "CHILD_DB_CONNS="+strconv.Itoa(c.DBConns), "CHILD_BATCH="+strconv.Itoa(c.Batch),
		"CHILD_CONCURRENCY="+strconv.Itoa(c.Concurrency), "CHILD_CLAIM_IDLE="+c.ClaimIdle.String(), "CHILD_PAUSE="+c.Pause.String(), "CHILD_WAIT_GO="+strconv.FormatBool(c.WaitGo))
}

// runChild is the ingest stage wired as `pushpipe ingest` wires it, plus an
// optional pause between commit and ack that widens the window in which a
// SIGKILL leaves committed but unacknowledged entries behind.
func runChild() int {
	atoi := func(k string) int { n, _ := strconv.Atoi(os.Getenv(k)); return n }
	dur := func(k string) time.Duration { d, _ := time.ParseDuration(os.Getenv(k)); return d }
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Str("child", os.Getenv("CHILD_CONSUMER")).Logger()

	mode := os.Getenv(childEnv)
	if mode == "bare" {
		return serveChild(ctx, bare202)
	}
	rdb, err := pipeline.NewRedis(os.Getenv("CHILD_REDIS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer rdb.Close()
	keys := pipeline.NewKeys(os.Getenv("CHILD_PREFIX"), 16)
	if mode == "api" {
		// the storm's API child profiles itself while it serves
		stop, err := profileTo(os.Getenv("PUSHPIPE_STORM_API_CPUPROFILE"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer stop()
		return serveChild(ctx, api.New(api.Config{Redis: rdb, Keys: keys, Log: log,
			Auth: api.Auth{AdminToken: "op", AppKeys: map[string]string{stormApp: os.Getenv("CHILD_APP_KEY")}}}))
	}
	cfg, err := pgxpool.ParseConfig(os.Getenv("CHILD_DB"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg.MaxConns = int32(atoi("CHILD_DB_CONNS"))
	cfg.ConnConfig.RuntimeParams["application_name"] = os.Getenv("CHILD_APPNAME")
	db, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer db.Close()

	reg := prometheus.NewRegistry()
	h := ingest.New(ingest.Config{DB: db, Log: log, Metrics: reg})
	pause := dur("CHILD_PAUSE")
	handler := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
		err := h.Handle(ctx, b)
		if err == nil && pause > 0 {
			time.Sleep(rand.N(pause))
		}
		return err
	})
	if os.Getenv("CHILD_WAIT_GO") == "true" {
		// Open the pool's connections now, so the timed run starts warm.
		conns := make([]*pgxpool.Conn, 0, cfg.MaxConns)
		for range cfg.MaxConns {
			c, err := db.Acquire(ctx)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Release()
		}
		fmt.Println("ready")
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	// the storm's ingest child profiles itself while it drains the stream
	stopProfile, err := profileTo(os.Getenv("PUSHPIPE_STORM_CPUPROFILE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stopProfile()
	r := pipeline.NewRunner(rdb, keys, pipeline.Options{
		Stage: "ingest", Stream: pipeline.StreamIngest, Consumer: os.Getenv("CHILD_CONSUMER"),
		Concurrency: atoi("CHILD_CONCURRENCY"), BatchSize: atoi("CHILD_BATCH"), Block: 200 * time.Millisecond,
		ClaimIdle: dur("CHILD_CLAIM_IDLE"), ShutdownTimeout: 5 * time.Second,
	}, handler, log, nil)
	if err := r.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for outcome, n := range ingestCounts(reg) { // for the parent, on the way out
		fmt.Printf("%s %v\n", outcome, n)
	}
	return 0
}

// ingestCounts reads pushpipe_ingest_events_total by outcome.
func ingestCounts(reg *prometheus.Registry) map[string]float64 {
	out := map[string]float64{}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "pushpipe_ingest_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// profileTo starts a CPU profile into file (none when file is ""); stop
// ends it.
func profileTo(file string) (stop func(), err error) {
	if file == "" {
		return func() {}, nil
	}
	out, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		out.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); out.Close() }, nil
}

// serveChild serves h on a free loopback port, tells the parent the address
// on its first line of output, and serves until SIGTERM.
func serveChild(ctx context.Context, h http.Handler) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(ln.Addr().String())
	if err := pipeline.ServeListener(ctx, ln, h, zerolog.Nop()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// child is a running child process; Addr is an HTTP child's address.
type child struct {
	cmd   *exec.Cmd
	done  chan struct{}
	stdin io.WriteCloser
	Addr  string
	lines []string // what it printed after the address; read once done
}

// counts are the ingest event counts an ingest child printed as it exited.
func (c *child) counts() map[string]float64 {
	<-c.done
	out := map[string]float64{}
	for _, l := range c.lines {
		if k, v, ok := strings.Cut(l, " "); ok {
			out[k], _ = strconv.ParseFloat(v, 64)
		}
	}
	return out
}

func startChild(t testing.TB, cfg childConfig) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = cfg.environ()
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan struct{}), stdin: stdin}
	lines := bufio.NewScanner(out)
	if cfg.Mode != "" || cfg.WaitGo {
		if !lines.Scan() {
			t.Fatalf("%s child did not say its address or that it is ready", cmpOr(cfg.Mode, "ingest"))
		}
		c.Addr = lines.Text()
	}
	go func() {
		for lines.Scan() {
			c.lines = append(c.lines, lines.Text())
		}
		cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() { c.signal(syscall.SIGKILL) })
	return c
}

// start lets a child started with WaitGo run.
func (c *child) start() { io.WriteString(c.stdin, "go\n") }

// signal sends sig and waits until the process has exited.
func (c *child) signal(sig syscall.Signal) {
	select {
	case <-c.done:
		return
	default:
	}
	c.cmd.Process.Signal(sig)
	<-c.done
}
