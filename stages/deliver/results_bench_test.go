package deliver

import (
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// BenchmarkDeliverNullResults is BenchmarkDeliverNull's run with results
// off, then on (an event per device appended by the mark script), in the
// same process and on the same servers: what the results stream costs
// deliver in time and in Redis CPU. n is b.N but at least 200,000 devices.
func BenchmarkDeliverNullResults(b *testing.B) {
	n := max(b.N, 200_000)
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			f := newFixture(b)
			devs := make([]testDevice, n)
			for i := range devs {
				u := int64(i + 1)
				devs[i] = testDevice{u, push.IOS, iosToken(u, 0)}
			}
			f.insertDevices(devs)
			f.createCampaign("bench", `{}`)
			if _, err := f.db.Exec(f.ctx, `VACUUM ANALYZE devices`); err != nil {
				b.Fatal(err)
			}
			f.emitUsers("bench", userRange(n))
			null := &NullSender{}
			b.ResetTimer()
			start, cpu, rcpu := time.Now(), processCPU(), f.redisCPU()
			f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: null}, NoResults: !on}, "bench", 30*time.Second)
			stats := f.waitDone("bench", n, 10*time.Minute)
			cpu, rcpu = processCPU()-cpu, f.redisCPU()-rcpu
			elapsed := time.UnixMilli(stats[pipeline.StatLastMs]).Sub(start)
			b.StopTimer()
			events, err := f.rdb.Do(f.ctx, f.rdb.B().Xlen().Key(f.keys.Stream(pipeline.StreamResults, 0)).Build()).AsInt64()
			if err != nil {
				b.Fatal(err)
			}
			if on == (events == 0) {
				b.Fatalf("results %s: partition 0 holds %d events", name, events)
			}
			b.ReportMetric(float64(n)/elapsed.Seconds(), "sends/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/send")
			b.ReportMetric(float64(rcpu.Microseconds())/float64(n), "redis-cpu-µs/send")
		})
	}
}
