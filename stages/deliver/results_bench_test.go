package deliver

import (
	"runtime"
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

// BenchmarkMarkRecords is deliver's cost of one mark call's records (440
// devices, iOS and Android alternately, the 10M bench's flush) built in a
// new buffer each call, as before recordBufs, and in a marker's kept ones.
// A background goroutine's live heap of pointers stands for deliver's, so
// the garbage a new buffer makes costs collections as it does there.
func BenchmarkMarkRecords(b *testing.B) {
	c := &campaign{ID: "c1", App: testApp}
	marks := make([]markReq, 440)
	for i := range marks {
		u := int64(i + 1)
		d := device{user: u, platform: push.IOS, token: iosToken(u, 0), id: 2 * u}
		if i%2 == 1 {
			d.platform, d.token = push.Android, androidToken(u, 0)
		}
		marks[i] = markReq{c: c, d: d, outcome: push.Sent}
	}
	live := make([]*[16]int64, 1<<20) // ~150 MB to mark
	for i := range live {
		live[i] = new([16]int64)
	}
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		cpu := processCPU()
		for b.Loop() {
			_ = recordsArg(resultRecords(marks, nil))
		}
		b.ReportMetric(float64((processCPU()-cpu).Nanoseconds())/float64(b.N*len(marks)), "cpu-ns/device")
	})
	b.Run("kept", func(b *testing.B) {
		b.ReportAllocs()
		var bufs recordBufs
		cpu := processCPU()
		for b.Loop() {
			r := resultRecords(marks, bufs.get())
			_ = recordsArg(r)
			bufs.put(r)
		}
		b.ReportMetric(float64((processCPU()-cpu).Nanoseconds())/float64(b.N*len(marks)), "cpu-ns/device")
	})
	runtime.KeepAlive(live)
}
