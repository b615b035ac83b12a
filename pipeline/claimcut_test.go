package pipeline_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// busyScript holds Redis (every client) for ARGV[1] microseconds.
const busyScript = `local t0 = redis.call('TIME')
repeat local t = redis.call('TIME') until (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) >= tonumber(ARGV[1])`

// A claim the stop comes in the middle of still counts no delivery: Redis
// is held (a script) while the runner's XAUTOCLAIM of an entry another
// consumer read waits for it, and the runner is stopped meanwhile. The
// claim runs once Redis is free, and the entry, which the runner never
// handled, has the one delivery of its read. Before, the stop cut the
// claim's reply, and the delivery it counted stayed.
func TestAStopCutClaimCountsNoDelivery(t *testing.T) {
	t.Parallel()
	redis := pipelinetest.RedisT(t, pipelinetest.RedisOptions{}) // its own: the script holds every client of it
	c := client(t, redis.Addr)
	keys := pipeline.NewKeys("ccut", 1)
	stream := keys.Stream("scl", 0)
	r := pipeline.NewRunner(client(t, redis.Addr), keys, pipeline.Options{Stage: "scl", Stream: "scl", Consumer: "c1", Concurrency: 1,
		ClaimIdle: pipeline.MinClaimIdle, Block: 50 * time.Millisecond, ShutdownTimeout: time.Second},
		pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
			<-b.Stopping()
			return pipeline.ErrStopping
		}), zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	pipelinetest.Eventually(t, 10*time.Second, "the runner ready", r.Ready)
	// Written and read by a consumer that then dies (in one transaction:
	// the runner's read, blocked, is served after it, and finds nothing),
	// and Redis held at once: the entry is not idle ClaimIdle before the
	// hold, so no claim took it yet; the claims sent meanwhile wait for
	// the hold, longer than ClaimIdle, and the first takes it.
	held := make(chan error, 1)
	go func() {
		res := c.DoMulti(context.Background(),
			c.B().Multi().Build(),
			c.B().Xadd().Key(stream).Id("*").FieldValue().FieldValue("n", "0").Build(),
			c.B().Xreadgroup().Group("scl", "gone").Count(1).Streams().Key(stream).Id(">").Build(),
			c.B().Exec().Build(),
			c.B().Eval().Script(busyScript).Numkeys(0).Arg("1000000").Build())
		var errs []error
		for _, r := range res {
			if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) {
				errs = append(errs, err)
			}
		}
		held <- errors.Join(errs...)
	}()
	// Stopped within the hold, most likely (a loaded box may stop it after;
	// then the claim is not cut, and the test proves less, not fails).
	time.Sleep(300 * time.Millisecond)
	cancel()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	row := pendingRow(t, c, stream)
	if row == nil {
		t.Fatal("the entry is no longer pending")
	}
	owner, _ := row[1].ToString()
	count, _ := row[3].AsInt64()
	if count != 1 {
		t.Errorf("after a stop during a claim: pending for %s, delivered %d times; want 1 (the other consumer's read)", owner, count)
	}
}
