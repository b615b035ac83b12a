package pipeline_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
)

const (
	benchEntries   = 20_000 // per measurement
	benchIDs       = 1000   // user ids per entry, as fan-out entries carry
	benchConc      = 4
	benchBatchSize = 100
)

// BenchmarkHop measures one hop of the runner (read, decode 1000 ids,
// re-encode, emit and ack atomically) against the floor on the same server in
// the same run: a bare loop of pipelined XREADGROUP + XADD + XACK moving the
// same entries with the same concurrency. It reports user ids/s for both and
// their ratio.
//
// forward: the handler re-emits each entry's payload as is (the runner's own
// cost). recode: it decodes the 1000 ids and encodes them again, as a stage
// that filters ids does.
func BenchmarkHop(b *testing.B) {
	b.Run("forward", func(b *testing.B) { benchHop(b, false) })
	b.Run("recode", func(b *testing.B) { benchHop(b, true) })
}

func benchHop(b *testing.B, recode bool) {
	c := client(b, env.Redis.Addr)
	ids := make([]int64, benchIDs)
	for i := range ids {
		ids[i] = int64(1_000_000 + i*7)
	}
	payload := pipeline.EncodeIDs(ids)
	var raw, runner time.Duration
	for b.Loop() {
		keys := testKeys()
		fill(b, c, keys, "rawsrc", payload)
		raw += timeIt(func() { rawHop(b, c, keys) })
		fill(b, c, keys, "src", payload)
		runner += timeIt(func() { runnerHop(b, c, keys, recode) })
		c.Do(context.Background(), c.B().Flushall().Build())
	}
	n := float64(b.N * benchEntries * benchIDs)
	b.ReportMetric(n/raw.Seconds(), "raw-ids/s")
	b.ReportMetric(n/runner.Seconds(), "runner-ids/s")
	b.ReportMetric(raw.Seconds()/runner.Seconds(), "ratio")
	b.ReportMetric(0, "ns/op")
}

func timeIt(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

func fill(b *testing.B, c rueidis.Client, keys pipeline.Keys, stream string, payload string) {
	ctx := context.Background()
	var msgs []pipeline.Message
	for n := range benchEntries {
		msgs = append(msgs, pipeline.Message{Stream: keys.Stream(stream, n%keys.Partitions), Fields: []string{pipeline.FieldUsers, payload}})
		if len(msgs) == 200 {
			if _, err := pipeline.Emit(ctx, c, msgs...); err != nil {
				b.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	if _, err := pipeline.Emit(ctx, c, msgs...); err != nil {
		b.Fatal(err)
	}
	for p := range keys.Partitions {
		pipeline.CreateGroup(ctx, c, keys.Stream(stream, p), "g")
	}
}

// rawHop is the floor: no handler, no Lua, no ownership check.
func rawHop(b *testing.B, c rueidis.Client, keys pipeline.Keys) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range benchConc {
		wg.Go(func() {
			for p := w; p < keys.Partitions; p += benchConc {
				in, out := keys.Stream("rawsrc", p), keys.Stream("rawdst", p)
				for {
					res, err := c.Do(ctx, c.B().Xreadgroup().Group("g", "raw").Count(benchBatchSize).Streams().Key(in).Id(">").Build()).AsXRead()
					if err != nil && !rueidis.IsRedisNil(err) {
						b.Error(err)
						return
					}
					xs := res[in]
					if len(xs) == 0 {
						break
					}
					cmds := make(rueidis.Commands, 0, len(xs)+1)
					acks := make([]string, 0, len(xs))
					for _, x := range xs {
						cmds = append(cmds, c.B().Xadd().Key(out).Id("*").FieldValue().FieldValue(pipeline.FieldUsers, x.FieldValues[pipeline.FieldUsers]).Build())
						acks = append(acks, x.ID)
					}
					cmds = append(cmds, c.B().Xack().Key(in).Group("g").Id(acks...).Build())
					for _, r := range c.DoMulti(ctx, cmds...) {
						if err := r.Error(); err != nil {
							b.Error(err)
							return
						}
					}
				}
			}
		})
	}
	wg.Wait()
}

func runnerHop(b *testing.B, c rueidis.Client, keys pipeline.Keys, recode bool) {
	h := pipeline.HandlerFunc(func(ctx context.Context, batch *pipeline.Batch) error {
		var buf []int64
		for _, e := range batch.Entries {
			var err error
			if !recode {
				batch.Emit(keys.Stream("dst", batch.Partition), pipeline.FieldUsers, e.Fields[pipeline.FieldUsers])
				continue
			}
			if buf, err = pipeline.AppendDecodedIDs(buf[:0], e.Fields[pipeline.FieldUsers]); err != nil {
				return err
			}
			batch.Emit(keys.Stream("dst", batch.Partition), pipeline.FieldUsers, pipeline.EncodeIDs(buf))
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "g", Stream: "src", Concurrency: benchConc,
		BatchSize: benchBatchSize, Block: 20 * time.Millisecond, Retention: -1}, h, zerolog.Nop(), nil)
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	dst := keys.Streams("dst")
	for {
		cmds := make(rueidis.Commands, len(dst))
		for i, s := range dst {
			cmds[i] = c.B().Xlen().Key(s).Build()
		}
		total := int64(0)
		for _, res := range c.DoMulti(ctx, cmds...) {
			n, _ := res.AsInt64()
			total += n
		}
		if total >= benchEntries {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
