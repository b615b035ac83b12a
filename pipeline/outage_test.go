package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// While Redis is down, a stage logs that it is unreachable once and that
// it answers again once, not one line per partition, poller and kept batch
// per retry: a 10 s Redis restart wrote ~1,300 warnings per deliver
// process (read failed, claim failed, could not keep the batch claimed).
func TestRedisOutageLogsOnce(t *testing.T) {
	t.Parallel() // mostly waiting out an outage, on a Redis of its own
	redis := pipelinetest.RedisT(t, pipelinetest.RedisOptions{AOF: true})
	c, err := pipeline.NewRedis(redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	keys := testKeys()
	release := make(chan struct{})
	h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
		select { // a batch in progress across the outage: kept claimed every 250ms
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	defer close(release) // before the runner stops (runLogged's cleanup)
	logs := runLogged(t, c, keys, pipeline.Options{Stage: "dedupe", Stream: pipeline.StreamDedupe, Express: true, Consumer: "d1",
		Block: 100 * time.Millisecond, ClaimIdle: time.Second, ShutdownTimeout: 100 * time.Millisecond}, h)
	if _, err := pipeline.Emit(t.Context(), c, pipeline.Message{Stream: keys.Stream(pipeline.StreamDedupe, 3), Fields: []string{"n", "1"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the batch in hand

	if err := redis.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := redis.Restart(); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 15*time.Second, "the runner says Redis answers again", func() bool {
		return strings.Contains(logs.String(), `"message":"Redis answers again`) // not the start line's "it says when Redis answers again"
	})
	time.Sleep(500 * time.Millisecond)
	got := logs.String()
	lines := strings.Count(got, "\n")
	if !strings.Contains(got, "Redis unreachable") || lines > 6 {
		t.Fatalf("%d lines for a 3 s outage, want the outage said once and its end once (a few lines at most):\n%.3000s", lines, got)
	}
}

// A handler failing to reach something else (PostgreSQL down, a
// provider) is not a Redis outage: with Redis up, the log never says
// Redis is unreachable. The first outage quieting did, 16 times a minute
// per deliverer while PostgreSQL was stopped.
func TestHandlerDialErrorIsNotARedisOutage(t *testing.T) {
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	dead := pipelinetest.FreeAddr(t) // nothing listens here
	h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
		conn, err := net.DialTimeout("tcp", dead, time.Second)
		if err == nil {
			conn.Close()
		}
		return fmt.Errorf("valid tokens: %w", err)
	})
	logs := runLogged(t, c, keys, pipeline.Options{Stage: "dedupe", Stream: pipeline.StreamDedupe, Consumer: "d1",
		Block: 100 * time.Millisecond, ClaimIdle: time.Second, ShutdownTimeout: 100 * time.Millisecond}, h)
	if _, err := pipeline.Emit(t.Context(), c, pipeline.Message{Stream: keys.Stream(pipeline.StreamDedupe, 3), Fields: []string{"n", "1"}}); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 10*time.Second, "the handler's failure logged", func() bool {
		return strings.Contains(logs.String(), "batch failed")
	})
	if got := logs.String(); strings.Contains(got, "Redis") {
		t.Fatalf("a handler's dial error was logged as a Redis outage:\n%.2000s", got)
	}
}

// Batches failing in the handler for a while (PostgreSQL stopped) are
// logged when the failures start and when batches succeed again, not at
// every batch's every retry: ~300 warnings a minute per deliver process.
func TestFailingBatchesLogQuietly(t *testing.T) {
	t.Parallel() // mostly waiting on retries, on keys and a log of its own
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	var failing atomic.Bool
	failing.Store(true)
	var calls atomic.Int64
	h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
		calls.Add(1)
		if failing.Load() {
			return errors.New("valid tokens: dial tcp 127.0.0.1:5432: connect: connection refused")
		}
		return nil
	})
	logs := runLogged(t, c, keys, pipeline.Options{Stage: "dedupe", Stream: pipeline.StreamDedupe, Consumer: "d1", BatchSize: 1,
		Block: 100 * time.Millisecond, ClaimIdle: 10 * time.Second, ShutdownTimeout: 100 * time.Millisecond}, h)
	produce(t, c, keys, pipeline.StreamDedupe, 32)
	pipelinetest.Eventually(t, 10*time.Second, "many failed attempts", func() bool { return calls.Load() >= 20 })
	failing.Store(false)
	pipelinetest.Eventually(t, 20*time.Second, "the runner says batches succeed again", func() bool {
		return strings.Contains(logs.String(), `"message":"batches succeed again`)
	})
	if lines := strings.Count(logs.String(), "\n"); lines > 3 {
		t.Fatalf("%d lines for one spell of failing batches, want its start and its end:\n%.3000s", lines, logs.String())
	}
}

// One poison batch retried while the others succeed is one spell, not a
// start and an end line at each of its retries.
func TestPoisonAmongGoodBatchesIsOneSpell(t *testing.T) {
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
		for _, e := range b.Entries {
			if e.Fields["n"] == "bad" {
				return errors.New("cannot parse entry")
			}
		}
		return nil
	})
	logs := runLogged(t, c, keys, pipeline.Options{Stage: "dedupe", Stream: pipeline.StreamDedupe, Consumer: "d1", BatchSize: 1,
		Partitions: []int{0, 1}, Block: 100 * time.Millisecond, ClaimIdle: time.Minute, RetryFor: 3 * time.Second, ShutdownTimeout: 100 * time.Millisecond}, h)
	emit := func(p int, n string) {
		if _, err := pipeline.Emit(t.Context(), c, pipeline.Message{Stream: keys.Stream(pipeline.StreamDedupe, p), Fields: []string{"n", n}}); err != nil {
			t.Fatal(err)
		}
	}
	emit(0, "bad")
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		emit(1, "good") // batches that succeed all along
	}
	got := logs.String()
	if starts := strings.Count(got, "batch failed, retrying"); starts != 1 {
		t.Fatalf("%d spells started for one poison batch retried among good ones, want 1:\n%.3000s", starts, got)
	}
}

// runLogged runs a runner of opts and h until the test ends, its warnings
// and errors in the returned log, and returns once it is ready.
func runLogged(t *testing.T, c rueidis.Client, keys pipeline.Keys, opts pipeline.Options, h pipeline.Handler) *pipelinetest.Logs {
	t.Helper()
	logs := &pipelinetest.Logs{}
	r := pipeline.NewRunner(c, keys, opts, h, zerolog.New(logs).Level(zerolog.WarnLevel), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
	return logs
}
