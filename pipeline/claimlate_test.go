package pipeline_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// holdScript holds Redis (every client) for ARGV[1] microseconds and
// returns the time it let go, in microseconds (TIME).
const holdScript = `local t0 = redis.call('TIME')
local t
repeat t = redis.call('TIME') until (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) >= tonumber(ARGV[1])
return t[1] * 1000000 + t[2]`

// A claim the stop cut whose answer comes after the stop began hands
// nothing to a worker, and counts no delivery however late it comes.
// Each runner's XAUTOCLAIM of an entry another consumer read waits
// behind a Redis held (a script) while the runners stop, and answers
// 700 ms after. The runner handed the batch to its free worker or gave
// it back, whichever the select drew: handed out past ShutdownTimeout
// (the handlers' context over), the worker returned without a handler
// call or a give-back, and the claim's delivery stayed (the flake of
// TestAStopCutClaimCountsNoDelivery, whose ShutdownTimeout a loaded box
// outran); within it, the handler was called after the stop. Eight
// runners, each its own draw.
func TestAStopLateClaimHandsOutNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give time.Duration // ShutdownTimeout
	}{
		{name: "answered past ShutdownTimeout", give: 50 * time.Millisecond},
		{name: "answered within ShutdownTimeout", give: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			redis := pipelinetest.RedisT(t, pipelinetest.RedisOptions{}) // its own: the script holds every client of it
			c := client(t, redis.Addr)
			rc := client(t, redis.Addr)
			const n = 8
			keys := pipeline.NewKeys("clate", n)
			var afterStop atomic.Int64
			h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
				select {
				case <-b.Stopping():
					afterStop.Add(1)
				default:
				}
				<-b.Stopping()
				return pipeline.ErrStopping
			})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, n)
			streams := make([]string, n)
			for p := range n {
				streams[p] = keys.Stream("scl", p)
				r := pipeline.NewRunner(rc, keys, pipeline.Options{Stage: "scl", Stream: "scl", Consumer: fmt.Sprintf("c%d", p),
					Partitions: []int{p}, Concurrency: 1, ClaimIdle: pipeline.MinClaimIdle, Block: 50 * time.Millisecond,
					ShutdownTimeout: tt.give}, h, zerolog.Nop(), nil)
				go func() { done <- r.Run(ctx) }()
				pipelinetest.Eventually(t, 10*time.Second, "the runner ready", r.Ready)
			}
			// Written and read by a consumer that then dies, in one
			// transaction, and Redis held at once for 1 s: each runner's
			// claim sent meanwhile takes its entry once Redis is free.
			held := make(chan int64, 1)
			go func() {
				cmds := rueidis.Commands{c.B().Multi().Build()}
				ids := make([]string, n)
				for p, s := range streams {
					cmds = append(cmds, c.B().Xadd().Key(s).Id("*").FieldValue().FieldValue("n", "0").Build())
					ids[p] = ">"
				}
				cmds = append(cmds, c.B().Xreadgroup().Group("scl", "gone").Count(1).Streams().Key(streams...).Id(ids...).Build(),
					c.B().Exec().Build(), c.B().Eval().Script(holdScript).Numkeys(0).Arg("1000000").Build())
				res := c.DoMulti(context.Background(), cmds...)
				for _, r := range res[:len(res)-1] {
					if err := r.Error(); err != nil {
						t.Error(err)
					}
				}
				end, err := res[len(res)-1].AsInt64()
				if err != nil {
					t.Error(err)
				}
				held <- end
			}()
			time.Sleep(300 * time.Millisecond)
			cancel()
			stopped := time.Now()
			end := time.UnixMicro(<-held)
			for range n {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			for _, s := range streams {
				row := pendingRow(t, c, s)
				if row == nil {
					t.Fatalf("%s: the entry is no longer pending", s)
				}
				owner, _ := row[1].ToString()
				count, _ := row[3].AsInt64()
				if count != 1 {
					t.Errorf("%s: pending for %s, delivered %d times; want 1 (the other consumer's read)", s, owner, count)
				}
			}
			if !stopped.Before(end) {
				// A loaded box stopped them after the hold: the claims came
				// before the stop, and their handlers' calls are right.
				t.Logf("stopped %v after Redis was let go; the claims were not cut", stopped.Sub(end))
				return
			}
			if k := afterStop.Load(); k != 0 {
				t.Errorf("%d batches handed to a handler after the stop", k)
			}
		})
	}
}
