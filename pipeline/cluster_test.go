package pipeline_test

import (
	"context"
	"os"
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
	log := zerolog.New(zerolog.SyncWriter(&countingWriter{n: &errs})).Level(zerolog.WarnLevel)
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
		t.Fatalf("%d warnings or errors logged on the cluster run", errs)
	}
	t.Logf("%d entries through two hops over 16 partitions on %d masters", count, len(owners))
}

type countingWriter struct{ n *int }

func (w *countingWriter) Write(p []byte) (int, error) { *w.n++; os.Stderr.Write(p); return len(p), nil }
