package dedupe_test

import (
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
)

// BenchmarkDedupe pushes 1000-id entries through one dedupe runner on
// standalone Redis and reports ids per second:
//   - fresh: dense ids, each seen once (the script forwards u as it came);
//   - overlap: a second channel shifted by half an entry, so every entry of
//     it is half repeats and the survivors are re-encoded in Lua;
//   - sparse: ids spread over 10^12, a bucket (hash field) per user.
func BenchmarkDedupe(b *testing.B) {
	c, err := pipeline.NewRedis(env.Redis.Addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	const perEntry, entries = 1000, 1000
	dense := func(shift int64) [][]int64 {
		var out [][]int64
		for e := range int64(entries) {
			lo := e*2048 + shift
			ids := make([]int64, perEntry)
			for j := range ids {
				ids[j] = lo + int64(j) + 1
			}
			out = append(out, ids)
		}
		return out
	}
	cases := []struct {
		name     string
		channels [][][]int64
	}{
		{"fresh", [][][]int64{dense(0)}},
		{"overlap", [][][]int64{dense(0), dense(500)}},
		{"sparse", [][][]int64{{randomIDs(perEntry*entries, 1, 1_000_000_000_000)}}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			var total time.Duration
			var ids int
			for range b.N {
				keys := newKeys()
				register(b, c, keys, "bench")
				for _, ch := range tc.channels {
					for _, e := range ch {
						emitEntries(b, c, keys, "bench", e, nil, perEntry)
						ids += len(e)
					}
				}
				start := time.Now()
				stop := runStage(b, c, keys, "bench")
				drained(b, c, keys)
				total += time.Since(start)
				stop()
			}
			b.ReportMetric(float64(ids)/total.Seconds(), "ids/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
