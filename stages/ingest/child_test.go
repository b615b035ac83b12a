package ingest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/ingest"
)

const childEnv = "PUSHPIPE_INGEST_CHILD"

// childConfig is how the parent test configures an ingest stage process.
type childConfig struct {
	Redis, DB, Prefix, Consumer, AppName string
	DBConns, Batch, Concurrency          int
	ClaimIdle                            time.Duration
	Pause                                time.Duration // random pause after each commit, before the ack
}

func (c childConfig) environ() []string {
	return append(os.Environ(), childEnv+"=1",
		"CHILD_REDIS="+c.Redis, "CHILD_DB="+c.DB, "CHILD_PREFIX="+c.Prefix, "CHILD_CONSUMER="+c.Consumer,
		"CHILD_APPNAME="+c.AppName, "CHILD_DB_CONNS="+strconv.Itoa(c.DBConns), "CHILD_BATCH="+strconv.Itoa(c.Batch),
		"CHILD_CONCURRENCY="+strconv.Itoa(c.Concurrency), "CHILD_CLAIM_IDLE="+c.ClaimIdle.String(), "CHILD_PAUSE="+c.Pause.String())
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

	rdb, err := pipeline.NewRedis(os.Getenv("CHILD_REDIS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer rdb.Close()
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

	h := ingest.New(ingest.Config{DB: db, Log: log})
	pause := dur("CHILD_PAUSE")
	handler := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
		err := h.Handle(ctx, b)
		if err == nil && pause > 0 {
			time.Sleep(rand.N(pause))
		}
		return err
	})
	keys := pipeline.NewKeys(os.Getenv("CHILD_PREFIX"), 16)
	r := pipeline.NewRunner(rdb, keys, pipeline.Options{
		Stage: "ingest", Stream: pipeline.StreamIngest, Consumer: os.Getenv("CHILD_CONSUMER"),
		Concurrency: atoi("CHILD_CONCURRENCY"), BatchSize: atoi("CHILD_BATCH"), Block: 200 * time.Millisecond,
		ClaimIdle: dur("CHILD_CLAIM_IDLE"), ShutdownTimeout: 5 * time.Second,
	}, handler, log, nil)
	if err := r.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// child is a running ingest stage process.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startChild(t *testing.T, cfg childConfig) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = cfg.environ()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { c.signal(syscall.SIGKILL) })
	return c
}

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
