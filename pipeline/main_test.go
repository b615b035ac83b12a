package pipeline_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

var env *pipelinetest.Env

// TestMain doubles as a stage process: with PIPELINE_WORKER set, the test
// binary runs one hop of the test pipeline until SIGTERM, so tests can kill
// real processes with SIGKILL and SIGTERM.
func TestMain(m *testing.M) {
	if role := os.Getenv("PIPELINE_WORKER"); role != "" {
		os.Exit(runWorker(role))
	}
	// The parallel tests here mostly wait out outages, restarts and
	// claim-idle, each on servers or keys of its own: the package used a
	// fifth of a core over its run. Four at a time, then, not GOMAXPROCS's
	// two on CI's 2-core box; a -parallel given on the command line wins.
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		if err := flag.Set("test.parallel", "4"); err != nil {
			panic(err)
		}
	}
	pipelinetest.Main(m, pipelinetest.EnvOptions{Redis: true, Cluster: true}, &env)
}

// hop is the test pipeline's handler: it forwards each entry's "n" to the
// same partition of the next stream, after a random pause that widens the
// window in which a kill lands mid-batch.
func hop(keys pipeline.Keys, out string, maxPause time.Duration) pipeline.HandlerFunc {
	return func(ctx context.Context, b *pipeline.Batch) error {
		if maxPause > 0 {
			time.Sleep(rand.N(maxPause))
		}
		for _, e := range b.Entries {
			b.Emit(keys.Stream(out, b.Partition), "n", e.Fields["n"])
		}
		return nil
	}
}

// runWorker runs hop IN→OUT (from PIPELINE_WORKER="in:out") as a consumer.
func runWorker(role string) int {
	var in, out string
	if _, err := fmt.Sscanf(role, "%s", &in); err != nil {
		return 2
	}
	for i := range role {
		if role[i] == ':' {
			in, out = role[:i], role[i+1:]
		}
	}
	keys := pipeline.NewKeys(os.Getenv("PIPELINE_PREFIX"), 16)
	rdb, err := pipeline.NewRedis(os.Getenv("PIPELINE_REDIS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer rdb.Close()
	pause, _ := time.ParseDuration(os.Getenv("PIPELINE_PAUSE"))
	alive, _ := time.ParseDuration(os.Getenv("PIPELINE_ALIVE"))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	const shutdownTimeout = 5 * time.Second
	r := pipeline.NewRunner(rdb, keys, pipeline.Options{
		Stage: in, Stream: in, Consumer: os.Getenv("PIPELINE_CONSUMER"), Concurrency: 4, BatchSize: 50,
		ClaimIdle: time.Second, ShutdownTimeout: shutdownTimeout, Block: 200 * time.Millisecond, AliveEvery: alive,
	}, hop(keys, out, pause), zerolog.New(os.Stderr).Level(zerolog.WarnLevel), nil)
	// A stop is timed here, from the signal's arrival to Run's return, on
	// the clock the runner's own ShutdownTimeout runs on: not the test's,
	// which adds the signal's delivery and the exit of a -race binary on a
	// loaded machine. Its bound is the runner's: ShutdownTimeout, and the
	// 3 s settleTimeout (release.go) a handler that returned by then has
	// for its commit.
	var stopped atomic.Int64
	context.AfterFunc(ctx, func() { stopped.Store(time.Now().UnixNano()) })
	if err := r.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if at := stopped.Load(); at != 0 {
		if took := time.Since(time.Unix(0, at)); took > shutdownTimeout+3*time.Second {
			fmt.Fprintf(os.Stderr, "the stop took %v, past the %v shutdown timeout and the commit's 3 s\n", took, shutdownTimeout)
			return exitSlowStop
		}
	}
	return 0
}

// exitSlowStop is a worker's exit code when its runner's stop outlasted
// its bound.
const exitSlowStop = 3

func testKeys() pipeline.Keys {
	return pipeline.NewKeys("t"+strconv.FormatUint(rand.Uint64(), 36), 16)
}

func client(t testing.TB, addrs ...string) rueidis.Client {
	t.Helper()
	c, err := pipeline.NewRedis(strings.Join(addrs, ","))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// produce writes entries n=0..count-1 spread over the partitions of stream.
func produce(t testing.TB, c rueidis.Client, keys pipeline.Keys, stream string, count int) {
	t.Helper()
	ctx := context.Background()
	const chunk = 1000
	for lo := 0; lo < count; lo += chunk {
		msgs := make([]pipeline.Message, 0, chunk)
		for n := lo; n < min(lo+chunk, count); n++ {
			msgs = append(msgs, pipeline.Message{Stream: keys.Stream(stream, n%keys.Partitions), Fields: []string{"n", strconv.Itoa(n)}})
		}
		if _, err := pipeline.Emit(ctx, c, msgs...); err != nil {
			t.Fatal(err)
		}
	}
}

// collect reads every entry of every partition of stream and counts each n.
func collect(t testing.TB, c rueidis.Client, keys pipeline.Keys, stream string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for p := 0; p < keys.Partitions; p++ {
		start := "-"
		for {
			xs, err := c.Do(context.Background(), c.B().Xrange().Key(keys.Stream(stream, p)).Start(start).End("+").Count(5000).Build()).AsXRange()
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range xs {
				seen[x.FieldValues["n"]]++
			}
			if len(xs) < 5000 {
				break
			}
			start = "(" + xs[len(xs)-1].ID
		}
	}
	return seen
}

// exactlyOnce checks every n in [0,count) appears once and nothing else does.
func exactlyOnce(t testing.TB, seen map[string]int, count int) {
	t.Helper()
	missing, dups := 0, 0
	for n := 0; n < count; n++ {
		switch c := seen[strconv.Itoa(n)]; {
		case c == 0:
			missing++
		case c > 1:
			dups += c - 1
		}
	}
	if missing != 0 || dups != 0 || len(seen) != count {
		t.Fatalf("want each of %d entries exactly once: missing %d, duplicates %d, distinct %d", count, missing, dups, len(seen))
	}
}
