package pipeline_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// countScript is a handler's commit: it counts the batch and forwards a copy
// of each n it is given.
var countScript = pipeline.NewCommitScript(`
local n = tonumber(ARGV[1])
for i = 2, n + 1 do emit(KEYS[1], 'n', ARGV[i]) end
redis.call('HINCRBY', KEYS[2], 'seen', n)
`)

// A handler's CommitScript runs atomically with the ack: entries go through
// once; a batch whose entries another consumer claimed while it was handled
// writes nothing (the claimer's commit is the one that counts).
func TestCommitScriptIsTheBatchCommit(t *testing.T) {
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	ctx := context.Background()
	stream := keys.Stream("src", 0)
	if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: stream, Fields: []string{"n", "1"}},
		pipeline.Message{Stream: stream, Fields: []string{"n", "2"}}); err != nil {
		t.Fatal(err)
	}
	counter := keys.Prefix + ":" + keys.Tag(0) + ":count"
	handled := make(chan struct{})
	release := make(chan struct{})
	h := func(slow bool) pipeline.Handler {
		return pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
			args := []string{strconv.Itoa(len(b.Entries))}
			for _, e := range b.Entries {
				args = append(args, e.Fields["n"])
			}
			b.Commit(countScript, []string{keys.Stream("dst", 0), counter}, args)
			if slow {
				close(handled)
				<-release // meanwhile another consumer claims the batch
			}
			return nil
		})
	}
	opts := pipeline.Options{Stage: "src", Stream: "src", Partitions: []int{0}, Block: 50 * time.Millisecond,
		ClaimIdle: time.Hour, KeepEvery: time.Hour}
	opts.Consumer = "slow"
	slow := pipeline.NewRunner(c, keys, opts, h(true), zerolog.Nop(), nil)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- slow.Run(runCtx) }()
	<-handled
	ids := []string{}
	xs, err := c.Do(ctx, c.B().Xrange().Key(stream).Start("-").End("+").Build()).AsXRange()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range xs {
		ids = append(ids, x.ID)
	}
	if err := c.Do(ctx, c.B().Xclaim().Key(stream).Group("src").Consumer("fast").MinIdleTime("0").Id(ids...).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	close(release)
	cancel()
	<-done // Run returns once its workers finished: the slow commit ran
	if got := len(collect(t, c, keys, "dst")); got != 0 {
		t.Fatalf("the claimed batch forwarded %d entries", got)
	}

	// The claimer (a runner named fast, claiming at once) commits them.
	opts.Consumer, opts.ClaimIdle, opts.KeepEvery = "fast", 10*time.Millisecond, 0
	fast := pipeline.NewRunner(c, keys, opts, h(false), zerolog.Nop(), nil)
	runCtx, cancel = context.WithCancel(ctx)
	go func() { done <- fast.Run(runCtx) }()
	pipelinetest.Eventually(t, 10*time.Second, "the claimer's commit", func() bool { return len(collect(t, c, keys, "dst")) == 2 })
	cancel()
	<-done
	if seen := collect(t, c, keys, "dst"); seen["1"] != 1 || seen["2"] != 1 {
		t.Fatalf("forwarded %v, want 1 and 2 once", seen)
	}
	if n, _ := c.Do(ctx, c.B().Hget().Key(counter).Field("seen").Build()).AsInt64(); n != 2 {
		t.Fatalf("counted %d, want 2", n)
	}
}
