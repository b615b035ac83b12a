package pipeline_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// TestBatchOutlastsRedisOutage: a batch in hand when Redis goes down for
// longer than RetryFor is tried again as soon as Redis is back, not left
// for a claim once idle ClaimIdle (here 20 s: before, the entry was
// handled ~17 s after the restart). With a second consumer whose claim
// could take the entries the moment Redis is back, still exactly one
// handler gets them through.
func TestBatchOutlastsRedisOutage(t *testing.T) {
	tests := []struct {
		name      string
		claimIdle time.Duration
		second    bool // a second consumer, claiming what goes idle
	}{
		{"alone", 20 * time.Second, false},
		{"beside a consumer that claims", 2 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Side by side: each waits out an outage of 4 s, of a Redis of
			// its own; its bound (10 s) is half the claim idle.
			t.Parallel()
			redis := pipelinetest.RedisT(t, pipelinetest.RedisOptions{AOF: true})
			// Every write on disk before its answer: the read and the keeps
			// survive the kill whatever the disk's pace (everysec could
			// lose the last second's).
			admin := client(t, redis.Addr)
			if err := admin.Do(t.Context(), admin.B().ConfigSet().ParameterValue().ParameterValue("appendfsync", "always").Build()).Error(); err != nil {
				t.Fatal(err)
			}
			keys := testKeys()
			stream := keys.Stream(pipeline.StreamDedupe, 3)
			var handled atomic.Int64
			inHand, release := make(chan struct{}), make(chan struct{})
			var first atomic.Bool
			first.Store(true)
			// Each consumer has its own client, as its own process would:
			// the handler's write to Redis is what fails while it is down.
			handler := func(c rueidis.Client, holds bool) pipeline.Handler {
				return pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
					if holds && first.CompareAndSwap(true, false) {
						close(inHand)
						select {
						case <-release:
						case <-ctx.Done():
							return ctx.Err()
						}
					}
					if err := c.Do(ctx, c.B().Incr().Key(keys.Prefix+":handled").Build()).Error(); err != nil {
						return err
					}
					handled.Add(1)
					return nil
				})
			}
			opts := pipeline.Options{Stage: "dedupe", Stream: pipeline.StreamDedupe, Express: true, BatchSize: 1,
				Block: 100 * time.Millisecond, ClaimIdle: tt.claimIdle, RetryFor: time.Second, ShutdownTimeout: 100 * time.Millisecond}
			c1 := client(t, redis.Addr)
			opts.Consumer = "d1"
			runLogged(t, c1, keys, opts, handler(c1, true))
			if _, err := pipeline.Emit(t.Context(), c1, pipeline.Message{Stream: stream, Fields: []string{"n", "1"}}); err != nil {
				t.Fatal(err)
			}
			<-inHand
			if tt.second {
				c2 := client(t, redis.Addr)
				opts.Consumer = "d2"
				runLogged(t, c2, keys, opts, handler(c2, false))
			}
			time.Sleep(300 * time.Millisecond) // a keep or so
			if err := redis.Kill(); err != nil {
				t.Fatal(err)
			}
			close(release) // the handler's write fails from now, past RetryFor
			time.Sleep(4 * time.Second)
			if err := redis.Restart(); err != nil {
				t.Fatal(err)
			}
			back := time.Now()
			pipelinetest.Eventually(t, 10*time.Second, "the entry handled and acked", func() bool {
				p, err := c1.Do(t.Context(), c1.B().Xpending().Key(stream).Group("dedupe").Build()).ToArray()
				return handled.Load() > 0 && err == nil && len(p) > 0 && mustInt(p[0]) == 0
			})
			t.Logf("handled %v after Redis was back", time.Since(back).Round(time.Millisecond))
			time.Sleep(time.Second) // a second handler, had there been one, would have been through too
			if n, err := c1.Do(t.Context(), c1.B().Get().Key(keys.Prefix+":handled").Build()).AsInt64(); n != 1 || handled.Load() != 1 {
				t.Errorf("the entry was handled through %d times (Redis counted %d, %v); want once", handled.Load(), n, err)
			}
		})
	}
}

func mustInt(m rueidis.RedisMessage) int64 {
	n, _ := m.AsInt64()
	return n
}

// TestBatchOutlastsMasterOutage: the same on a 3-master cluster, where one
// master down is not Redis down. The batch in hand whose stream's master is
// killed is held and tried again the moment that master is back (its keeps
// go to the stream's own master), while entries of partitions on the other
// masters go through all along; every entry is handled once. A poison
// batch on a master that answers is still given up after RetryFor, as on
// a healthy Redis, whatever the other master does. A stage started while
// the master is down waits for it to create its groups, then reads. The
// same when the master is frozen (SIGSTOP) instead: its calls hang until
// the client's timeout rather than fail at once, and must not hold up the
// other masters'.
func TestBatchOutlastsMasterOutage(t *testing.T) {
	t.Parallel() // mostly waiting out an outage, each case on a cluster of its own
	for _, tt := range []struct {
		name   string
		frozen bool // SIGSTOP and SIGCONT: nothing answers, where a killed master refuses
	}{
		{"killed", false},
		{"frozen", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cluster := pipelinetest.ClusterWithT(t, pipelinetest.RedisOptions{AOF: true})
			c := client(t, cluster.Addrs...)
			for addr, node := range c.Nodes() {
				// As in TestBatchOutlastsRedisOutage: the kill loses no write. And
				// the node timeout well past the outage and its checks on a loaded
				// machine: past it the other masters too answer CLUSTERDOWN.
				if err := node.Do(t.Context(), node.B().ConfigSet().ParameterValue().
					ParameterValue("appendfsync", "always").ParameterValue("cluster-node-timeout", "30000").Build()).Error(); err != nil {
					t.Fatalf("%s: %v", addr, err)
				}
			}
			keys := testKeys()
			owner := func(p int) string {
				slot, err := c.Do(t.Context(), c.B().ClusterKeyslot().Key(keys.Stream(pipeline.StreamDedupe, p)).Build()).AsInt64()
				if err != nil {
					t.Fatal(err)
				}
				return pipelinetest.SlotOwner(t, c, slot)
			}
			// held's master is killed; others are every partition on the other two.
			held, down := 0, owner(0)
			var others []int
			for p := 1; p < keys.Partitions; p++ {
				if owner(p) != down {
					others = append(others, p)
				}
			}
			if len(others) == 0 {
				t.Fatalf("every partition on %s", down)
			}
			victim := slices.IndexFunc(cluster.Nodes, func(n *pipelinetest.Redis) bool { return n.Addr == down })
			if victim < 0 {
				t.Fatalf("no node at %s among %v", down, cluster.Addrs)
			}

			inHand, release := make(chan struct{}), make(chan struct{})
			var first atomic.Bool
			first.Store(true)
			var heldDone, othersDone atomic.Int64
			h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
				if _, ok := b.Entries[0].Fields["poison"]; ok {
					return errors.New("poison")
				}
				isHeld := b.Partition == held
				if isHeld && first.CompareAndSwap(true, false) {
					close(inHand)
					select {
					case <-release:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				// A write to the batch's own master: it fails while that master is down.
				if err := c.Do(ctx, c.B().Incrby().Key(b.Stream+":handled").Increment(int64(len(b.Entries))).Build()).Error(); err != nil {
					return err
				}
				if isHeld {
					heldDone.Add(int64(len(b.Entries)))
				} else {
					othersDone.Add(int64(len(b.Entries)))
				}
				return nil
			})
			logs := runLogged(t, c, keys, pipeline.Options{Stage: "dedupe", Stream: pipeline.StreamDedupe, Express: true, BatchSize: 1,
				Consumer: "d1", Block: 100 * time.Millisecond, ClaimIdle: 20 * time.Second, RetryFor: time.Second,
				ShutdownTimeout: 100 * time.Millisecond}, h)
			emit := func(p, n int) {
				msgs := make([]pipeline.Message, n)
				for i := range msgs {
					msgs[i] = pipeline.Message{Stream: keys.Stream(pipeline.StreamDedupe, p), Fields: []string{"n", strconv.Itoa(i)}}
				}
				if _, err := pipeline.Emit(t.Context(), c, msgs...); err != nil {
					t.Fatal(err)
				}
			}
			emit(held, 1)
			<-inHand
			time.Sleep(300 * time.Millisecond) // a keep or so
			stop := cluster.Nodes[victim].Kill
			if tt.frozen {
				stop = cluster.Nodes[victim].Freeze
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			killed := time.Now()
			// Another stage started now, with a master of its streams down, waits
			// for it to create its groups rather than exit with the dial error.
			var lateHandled atomic.Int64
			late := startRunner(t, c, keys, pipeline.Options{Stage: "resolve", Stream: pipeline.StreamRanges, Consumer: "r1",
				Block: 100 * time.Millisecond}, pipeline.HandlerFunc(func(_ context.Context, b *pipeline.Batch) error {
				lateHandled.Add(int64(len(b.Entries)))
				return nil
			}))
			close(release) // the held batch's write fails from now, past RetryFor
			const perPartition = 5
			for _, p := range others {
				emit(p, perPartition)
			}
			want := int64(perPartition * len(others))
			poisoned := keys.Stream(pipeline.StreamDedupe, others[0])
			if _, err := pipeline.Emit(t.Context(), c, pipeline.Message{Stream: poisoned, Fields: []string{"poison", "1"}}); err != nil {
				t.Fatal(err)
			}
			pipelinetest.Eventually(t, 15*time.Second, "the other masters' entries handled while one is down", func() bool {
				return othersDone.Load() == want
			})
			pipelinetest.Eventually(t, 15*time.Second, "the poison batch given up while the other master is down", func() bool {
				return strings.Contains(logs.String(), `"stream":"`+poisoned+`","entries":1,"attempts"`)
			})
			time.Sleep(time.Until(killed.Add(4 * time.Second))) // past RetryFor, whatever the checks took
			if heldDone.Load() != 0 {
				t.Fatalf("the held batch went through while its master was down")
			}
			late.waitOutage(t)
			if late.r.Ready() {
				t.Error("the stage started while a master was down is Ready before its groups exist")
			}
			if tt.frozen {
				cluster.Nodes[victim].Thaw()
			} else if err := cluster.Nodes[victim].Restart(); err != nil {
				t.Fatal(err)
			}
			back := time.Now()
			// ClaimIdle is 20 s: a claim cannot be what hands it over within 10 s.
			// (A restarted master answers CLUSTERDOWN for its rejoin delay, ~2 s
			// here, which outlast waits out like the outage itself.)
			pipelinetest.Eventually(t, 10*time.Second, "the held entry handled once its master is back", func() bool {
				return heldDone.Load() > 0
			})
			t.Logf("handled %v after its master was back", time.Since(back).Round(time.Millisecond))
			time.Sleep(time.Second) // a second handler, had there been one, would have been through too
			n, err := c.Do(t.Context(), c.B().Get().Key(keys.Stream(pipeline.StreamDedupe, held)+":handled").Build()).AsInt64()
			if n != 1 || heldDone.Load() != 1 || othersDone.Load() != want {
				t.Errorf("held entry handled %d times (its master counted %d, %v), others %d of %d; want each once",
					heldDone.Load(), n, err, othersDone.Load(), want)
			}

			pipelinetest.Eventually(t, 30*time.Second, "the late stage ready once the master is back", late.r.Ready)
			lateStream := keys.Stream(pipeline.StreamRanges, held) // on the master that was down
			if _, err := pipeline.Emit(t.Context(), c, pipeline.Message{Stream: lateStream, Fields: []string{"n", "1"}}); err != nil {
				t.Fatal(err)
			}
			pipelinetest.Eventually(t, 30*time.Second, "the late stage's entry handled and acked", func() bool {
				pending, err := c.Do(t.Context(), c.B().Xpending().Key(lateStream).Group("resolve").Build()).ToArray()
				return lateHandled.Load() == 1 && err == nil && len(pending) > 0 && mustInt(pending[0]) == 0
			})
			if n := strings.Count(late.logs.String(), "Redis unreachable"); n != 1 {
				t.Errorf("the late stage said the outage %d times, want once:\n%s", n, late.logs.String())
			}
		})
	}
}
