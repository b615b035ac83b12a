package pipeline_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// (d) The same runner on a 3-master cluster with 16 partitions: partitions
// land on all three masters, and two hops run without CROSSSLOT or MOVED
// errors (any such error fails a commit and would show as a missing output).
func TestRunnerOnCluster(t *testing.T) {
	t.Parallel() // keys of its own on the shared cluster, which no parallel test stops
	ctx := context.Background()
	c := client(t, env.Cluster.Addrs...)
	keys := testKeys()

	owners := map[string]bool{}
	for p := 0; p < keys.Partitions; p++ {
		slot, err := c.Do(ctx, c.B().ClusterKeyslot().Key(keys.Stream("src", p)).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		owners[pipelinetest.SlotOwner(t, c, slot)] = true
	}
	if len(owners) != 3 {
		t.Fatalf("16 partitions live on %d masters, want all 3: %v", len(owners), owners)
	}

	const count = 20_000
	produce(t, c, keys, "src", count)
	var errs int
	log := zerolog.New(zerolog.SyncWriter(&bugWriter{n: &errs})).Level(zerolog.WarnLevel)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 2)
	for _, hopSpec := range [][2]string{{"src", "mid"}, {"mid", "dst"}} {
		r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: hopSpec[0], Stream: hopSpec[0], Block: 100 * time.Millisecond},
			hop(keys, hopSpec[1], 0), log, nil)
		go func() { done <- r.Run(rctx) }()
	}
	pipelinetest.Eventually(t, 60*time.Second, "all outputs", func() bool { return len(collect(t, c, keys, "dst")) >= count })
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	exactlyOnce(t, collect(t, c, keys, "dst"), count)
	if errs != 0 {
		t.Fatalf("%d warnings or errors logged on the cluster run (but a loaded box's Redis timeouts)", errs)
	}
	t.Logf("%d entries through two hops over 16 partitions on %d masters", count, len(owners))
}

// bugWriter counts the log lines of a run that mean a bug (a CROSSSLOT or
// MOVED error, a failed commit or claim, a batch lost), echoing every
// line to stderr. It leaves out a Redis call that timed out: the outage
// note (redisOutage) of a box too loaded to answer within the runner's
// bound (reachTry, at load ~25 on 2 cores), which says nothing of the
// cluster code; an outage of another kind (refused, reset) still counts.
type bugWriter struct{ n *int }

func (w *bugWriter) Write(p []byte) (int, error) {
	if !slowBoxLine(p) {
		*w.n++
	}
	os.Stderr.Write(p)
	return len(p), nil
}

// slowBoxLine reports whether a JSON log line is the runner's note of a
// Redis call that timed out, or of Redis answering again after one.
func slowBoxLine(p []byte) bool {
	var line struct {
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(p, &line) != nil {
		return false
	}
	switch {
	case strings.HasPrefix(line.Message, "Redis answers again"):
		return true // the end of a spell, whose start counted unless it timed out
	case strings.HasPrefix(line.Message, "Redis unreachable"), strings.HasPrefix(line.Message, "Redis still unreachable"):
		return strings.HasSuffix(line.Error, context.DeadlineExceeded.Error()) || strings.HasSuffix(line.Error, "i/o timeout")
	}
	return false
}

// What TestRunnerOnCluster leaves out of its count: a loaded box's Redis
// timeouts, and nothing else.
func TestSlowBoxLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give string
		want bool
	}{
		{name: "a try past reachTry", want: true,
			give: `{"level":"warn","stage":"src","error":"context deadline exceeded","message":"Redis unreachable: the stage waits and retries (quietly; it says when Redis answers again)"}`},
		{name: "still, a rueidis timeout", want: true,
			give: `{"level":"warn","error":"xautoclaim s: i/o timeout","for":"30s","failed_calls":3,"message":"Redis still unreachable"}`},
		{name: "the spell's end", want: true,
			give: `{"level":"warn","after":"7s","failed_calls":1,"message":"Redis answers again; the stage goes on where it was"}`},
		{name: "refused", want: false,
			give: `{"level":"warn","error":"dial tcp 127.0.0.1:7001: connect: connection refused","message":"Redis unreachable: the stage waits and retries (quietly; it says when Redis answers again)"}`},
		{name: "CROSSSLOT", want: false,
			give: `{"level":"warn","error":"commit s: CROSSSLOT Keys in request don't hash to the same slot","message":"batch failed, retrying"}`},
		{name: "a timeout of another call", want: false,
			give: `{"level":"warn","error":"context deadline exceeded","message":"claim failed"}`},
		{name: "not JSON", want: false, give: `panic: MOVED 3999 127.0.0.1:7002`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := slowBoxLine([]byte(tt.give)); got != tt.want {
				t.Errorf("slowBoxLine(%s) = %v, want %v", tt.give, got, tt.want)
			}
		})
	}
}
