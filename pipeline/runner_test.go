package pipeline_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// worker is one hop of the test pipeline running as its own OS process.
type worker struct {
	role string
	cmd  *exec.Cmd
	done chan error
}

func startWorker(t *testing.T, redisAddr string, keys pipeline.Keys, role, consumer string, pause time.Duration) *worker {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PIPELINE_WORKER="+role, "PIPELINE_REDIS="+redisAddr,
		"PIPELINE_PREFIX="+keys.Prefix, "PIPELINE_CONSUMER="+consumer, "PIPELINE_PAUSE="+pause.String())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &worker{role: role, cmd: cmd, done: make(chan error, 1)}
	go func() { w.done <- cmd.Wait() }()
	t.Cleanup(func() {
		w.cmd.Process.Kill()
		<-w.done
	})
	return w
}

func (w *worker) kill() { w.cmd.Process.Signal(syscall.SIGKILL); <-w.done; w.done <- nil }

// (a) 30k entries through two hops while consumers are SIGKILLed at random
// points: every input produces its output exactly once downstream. (At
// 100k the -race workers took over a minute; 30k still outlast the eight
// kills, each a worker with batches in hand.)
func TestTwoHopsExactlyOnceUnderKills(t *testing.T) {
	t.Parallel() // worker processes killed and started on keys of its own; its bound is exactly once
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	const count = 30_000
	produce(t, c, keys, "src", count)

	var live []*worker
	next := 0
	spawn := func(role string) {
		next++
		live = append(live, startWorker(t, env.Redis.Addr, keys, role, "w"+strconv.Itoa(next), 30*time.Millisecond))
	}
	for range 2 {
		spawn("src:mid")
		spawn("mid:dst")
	}
	kills := 0
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(200+rand.IntN(400)) * time.Millisecond)
		if len(collect(t, c, keys, "dst")) == count {
			break
		}
		if kills < 8 {
			i := rand.IntN(len(live))
			role := live[i].role
			live[i].kill()
			live = append(live[:i], live[i+1:]...)
			kills++
			spawn(role) // a new consumer name: the dead one's entries must be claimed
		}
	}
	pipelinetest.Eventually(t, 60*time.Second, "all outputs", func() bool { return len(collect(t, c, keys, "dst")) >= count })
	time.Sleep(1500 * time.Millisecond) // past the claim idle: a late duplicate would show up now
	exactlyOnce(t, collect(t, c, keys, "dst"), count)
	exactlyOnce(t, collect(t, c, keys, "mid"), count)
	t.Logf("%d entries, two hops, %d consumers killed with SIGKILL: each output exactly once", count, kills)
	if kills < 3 {
		t.Fatalf("only %d kills happened; the test did not exercise claims", kills)
	}
}

// (b) A poison entry is dead-lettered after MaxDeliveries; entries behind it flow.
func TestPoisonEntryGoesToDLQ(t *testing.T) {
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	produce(t, c, keys, "src", 1000)
	// the poison entry, in partition 3
	if _, err := pipeline.Emit(context.Background(), c, pipeline.Message{Stream: keys.Stream("src", 3), Fields: []string{"n", "poison"}}); err != nil {
		t.Fatal(err)
	}
	produce(t, c, keys, "src", 1000) // behind it: n repeats 0..999 once more
	var attempts atomic.Int64
	h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
		for i, e := range b.Entries {
			if e.Fields["n"] == "poison" {
				attempts.Add(1)
				b.Fail(i, errors.New("cannot parse poison"))
				continue
			}
			b.Emit(keys.Stream("dst", b.Partition), "n", e.Fields["n"])
		}
		return nil
	})
	dlq := runUntilDeadLetter(t, c, keys, pipeline.Options{Stage: "src", Stream: "src", ClaimIdle: 200 * time.Millisecond,
		MaxDeliveries: 3, Block: 100 * time.Millisecond}, h)
	seen := collect(t, c, keys, "dst")
	for n := range 1000 {
		if seen[strconv.Itoa(n)] != 2 {
			t.Fatalf("entry %d passed %d times, want 2 (once before and once behind the poison entry)", n, seen[strconv.Itoa(n)])
		}
	}
	if len(dlq) != 1 {
		t.Fatalf("want 1 dead letter, got %d", len(dlq))
	}
	d := dlq[0].FieldValues
	if d[pipeline.DLQStream] != keys.Stream("src", 3) || d[pipeline.DLQFields] != `{"n":"poison"}` || d[pipeline.DLQDeliveries] != "4" {
		t.Fatalf("dead letter lacks its origin: %v", d)
	}
	if want := "cannot parse poison"; !contains(d[pipeline.DLQError], want) {
		t.Fatalf("dead letter reason %q does not carry the handler's error %q", d[pipeline.DLQError], want)
	}
	if got := attempts.Load(); got != 3 {
		t.Fatalf("poison entry handled %d times, want MaxDeliveries=3", got)
	}
	groups, _ := pipeline.StreamGroups(context.Background(), c, []string{keys.Stream("src", 3)})
	if groups[0][0].Pending != 0 {
		t.Fatalf("poison entry still pending after dead-lettering")
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// (e) SIGTERM mid-batch: the process exits 0 within the shutdown timeout and
// nothing is lost: what it did not finish, another consumer claims.
func TestSIGTERMMidBatchLosesNothing(t *testing.T) {
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	const count = 5000
	produce(t, c, keys, "src", count)
	w := startWorker(t, env.Redis.Addr, keys, "src:dst", "slow", 300*time.Millisecond)
	pipelinetest.Eventually(t, 20*time.Second, "the worker to be mid-run", func() bool {
		n := len(collect(t, c, keys, "dst"))
		return n > 0 && n < count
	})
	w.cmd.Process.Signal(syscall.SIGTERM)
	// The worker times its own stop against the runner's bound (runWorker)
	// and says so by its exit code.
	err := <-w.done
	w.done <- nil
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() == exitSlowStop {
		t.Fatalf("the worker's stop outlasted the shutdown timeout (its stderr says by how much): %v", err)
	}
	if err != nil {
		t.Fatalf("worker did not exit 0 on SIGTERM: %v", err)
	}
	partial := len(collect(t, c, keys, "dst"))
	startWorker(t, env.Redis.Addr, keys, "src:dst", "successor", 0)
	pipelinetest.Eventually(t, 30*time.Second, "all outputs", func() bool { return len(collect(t, c, keys, "dst")) >= count })
	time.Sleep(1500 * time.Millisecond)
	exactlyOnce(t, collect(t, c, keys, "dst"), count)
	t.Logf("SIGTERM after %d of %d: exit 0; successor finished the rest exactly once", partial, count)
}

// A batch mixing a malformed entry (dead-lettered at once) with good ones:
// the good ones are emitted and acked, the bad one is in the DLQ, nothing is
// left pending.
func TestDeadLetterBesideGoodEntries(t *testing.T) {
	ctx := context.Background()
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	s := keys.Stream("src", 0)
	var msgs []pipeline.Message
	for i := range 10 {
		n := strconv.Itoa(i)
		if i == 4 {
			n = "malformed"
		}
		msgs = append(msgs, pipeline.Message{Stream: s, Fields: []string{"n", n}})
	}
	if _, err := pipeline.Emit(ctx, c, msgs...); err != nil {
		t.Fatal(err)
	}
	h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
		for i, e := range b.Entries {
			if _, err := strconv.Atoi(e.Fields["n"]); err != nil {
				b.DeadLetter(i, err)
				continue
			}
			b.Emit(keys.Stream("dst", b.Partition), "n", e.Fields["n"])
		}
		return nil
	})
	r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "src", Stream: "src", Partitions: []int{0},
		Block: 50 * time.Millisecond}, h, zerolog.Nop(), nil)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- r.Run(rctx) }()
	pipelinetest.Eventually(t, 10*time.Second, "9 outputs", func() bool { return len(collect(t, c, keys, "dst")) == 9 })
	cancel()
	<-done
	groups, _ := pipeline.StreamGroups(ctx, c, []string{s})
	dlq, _ := c.Do(ctx, c.B().Xlen().Key(keys.DLQ()).Build()).AsInt64()
	if groups[0][0].Pending != 0 || dlq != 1 {
		t.Fatalf("pending %d, dead letters %d; want 0 and 1", groups[0][0].Pending, dlq)
	}
}

// A handler that panics on one entry's input (a bug that entry found) does
// not take the process down, where every restart would have redelivered the
// entry and crashed again: the panic is the batch's error, the batch is
// handled again one entry at a time, so the entries beside it go through,
// and the one that panics ends in the DLQ with the panic as its reason.
func TestPanickingEntryGoesToDLQ(t *testing.T) {
	ctx := context.Background()
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	s := keys.Stream("src", 0)
	const good = 29
	var msgs []pipeline.Message
	for i := range good + 1 {
		n := strconv.Itoa(i)
		if i == 14 {
			n = "poison"
		}
		msgs = append(msgs, pipeline.Message{Stream: s, Fields: []string{"n", n}})
	}
	if _, err := pipeline.Emit(ctx, c, msgs...); err != nil {
		t.Fatal(err)
	}
	h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
		for _, e := range b.Entries {
			if e.Fields["n"] == "poison" {
				var limits []int
				_ = limits[len(e.Fields)] // the bug: an index out of range
			}
			b.Emit(keys.Stream("dst", b.Partition), "n", e.Fields["n"])
		}
		return nil
	})
	dlq := runUntilDeadLetter(t, c, keys, pipeline.Options{Stage: "src", Stream: "src", Partitions: []int{0}, BatchSize: 10,
		ClaimIdle: 300 * time.Millisecond, MaxDeliveries: 2, Block: 50 * time.Millisecond}, h)
	seen := collect(t, c, keys, "dst")
	if seen["poison"] != 0 {
		t.Fatalf("the poison entry passed %d times", seen["poison"])
	}
	for i := range good + 1 {
		if n := seen[strconv.Itoa(i)]; i != 14 && n != 1 {
			t.Fatalf("entry %d passed %d times, want once", i, n)
		}
	}
	d := dlq[0].FieldValues
	if len(dlq) != 1 || d[pipeline.DLQFields] != `{"n":"poison"}` || !contains(d[pipeline.DLQError], "panic") {
		t.Fatalf("dead letters %v, want the poison entry's with the panic as its reason", dlq)
	}
	// Nothing pending once Run returned, read once: the stop comes as soon
	// as the dead letter is seen, at times while the claim loop that wrote
	// it waited for the XADD's reply, and the ack must still have gone out
	// (TestDeadLetterOutlastsAStop).
	groups, err := pipeline.StreamGroups(ctx, c, []string{s})
	if err != nil {
		t.Fatal(err)
	}
	if n := groups[0][0].Pending; n != 0 {
		t.Fatalf("%d entries still pending", n)
	}
}

// runUntilDeadLetter runs h under a runner of opts until the DLQ holds an
// entry, stops it, and returns the dead letters.
func runUntilDeadLetter(t *testing.T, c rueidis.Client, keys pipeline.Keys, opts pipeline.Options, h pipeline.Handler) []rueidis.XRangeEntry {
	t.Helper()
	r := pipeline.NewRunner(c, keys, opts, h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	var dlq []rueidis.XRangeEntry
	pipelinetest.Eventually(t, 20*time.Second, "a dead letter", func() bool {
		dlq, _ = c.Do(ctx, c.B().Xrange().Key(keys.DLQ()).Start("-").End("+").Build()).AsXRange()
		return len(dlq) > 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return dlq
}
