package deliver

import (
	"context"
	"crypto/tls"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/payload"
	"github.com/sideshow/apns2/token"
	"golang.org/x/net/http2"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// benchInFlight is the concurrency both sides of the comparison get: the
// bare loop's goroutines and deliver's --in-flight.
const benchInFlight = 256

// minBenchSends is the fewest sends a run measures.
const minBenchSends = 20000

// BenchmarkDeliverVsBare sends n notifications to one fake APNs over
// HTTP/2 twice in the same run: from a bare apns2 client loop (the floor),
// then through the whole deliver stage (Redis stream, PostgreSQL tokens,
// sent marks, settle and ack, no rate limit). Compare the sends/s; n is b.N
// but at least minBenchSends, so that -benchtime 1x still measures a rate
// (e.g. -benchtime 50000x for a longer run).
func BenchmarkDeliverVsBare(b *testing.B) {
	n := max(b.N, minBenchSends)
	b.Run("bare", func(b *testing.B) {
		fake := fakeprovider.Start(b, fakeprovider.Options{})
		key, err := token.AuthKeyFromFile(fakeprovider.WriteP8(b))
		if err != nil {
			b.Fatal(err)
		}
		c := apns2.NewTokenClient(&token.Token{AuthKey: key, KeyID: "KEYID12345", TeamID: "TEAMID1234"})
		c.Host = fake.URL()
		//lint:ignore SA1019 the floor is apns2 as shipped, and apns2 builds on x/net/http2's Transport
		c.HTTPClient.Transport.(*http2.Transport).TLSClientConfig = &tls.Config{RootCAs: fake.CertPool()}
		ctx := context.Background()
		var next, failed atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		start, cpu := time.Now(), processCPU()
		for range benchInFlight {
			wg.Go(func() {
				for {
					i := next.Add(1)
					if i > int64(n) {
						return
					}
					resp, err := c.PushWithContext(ctx, &apns2.Notification{
						DeviceToken: iosToken(i, 0), Topic: testTopic, CollapseID: "bench",
						Payload: payload.NewPayload().AlertTitle("Hello").AlertBody("World"),
					})
					if err != nil || !resp.Sent() {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		elapsed, cpu := time.Since(start), processCPU()-cpu
		b.StopTimer()
		if bad := failed.Load(); bad > 0 {
			b.Fatalf("%d sends failed", bad)
		}
		b.ReportMetric(float64(n)/elapsed.Seconds(), "sends/s")
		b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/send")
	})
	b.Run("deliver", func(b *testing.B) {
		f := newFixture(b)
		fake := fakeprovider.Start(b, fakeprovider.Options{})
		devs := make([]testDevice, n)
		for i := range devs {
			u := int64(i + 1)
			devs[i] = testDevice{u, push.IOS, iosToken(u, 0)}
		}
		f.insertDevices(devs)
		f.createCampaign("bench", `{}`)
		// The same alert as the bare loop's: title and body only.
		if _, err := f.db.Exec(f.ctx, `UPDATE campaigns SET category = '' WHERE id = 'bench'`); err != nil {
			b.Fatal(err)
		}
		if _, err := f.db.Exec(f.ctx, `VACUUM ANALYZE devices`); err != nil {
			b.Fatal(err)
		}
		// One connection, like the bare client.
		sender := apnsSenderConns(b, fake, 1)
		b.ResetTimer()
		start, cpu, rcpu := time.Now(), processCPU(), f.redisCPU()
		f.emitUsers("bench", userRange(n))
		f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: sender}, InFlight: benchInFlight},
			"bench", 30*time.Second)
		stats := f.waitDone("bench", n, 10*time.Minute)
		cpu, rcpu = processCPU()-cpu, f.redisCPU()-rcpu
		// Up to the last send deliver recorded, as the bare loop's time
		// ends with its last answer (waitDone polls every 100 ms).
		elapsed := time.UnixMilli(stats[pipeline.StatLastMs]).Sub(start)
		b.StopTimer()
		if s := fake.Summary(); s.Accepted != uint64(n) {
			b.Fatalf("provider accepted %d of %d", s.Accepted, n)
		}
		b.ReportMetric(float64(n)/elapsed.Seconds(), "sends/s")
		b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/send")
		b.ReportMetric(float64(rcpu.Microseconds())/float64(n), "redis-cpu-µs/send")
	})
}

// processCPU is this process's user+system CPU time so far (the fake
// provider and the client or stage together).
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is the Redis server's CPU time so far, from INFO cpu.
func (f *fixture) redisCPU() time.Duration {
	info, err := f.rdb.Do(f.ctx, f.rdb.B().Info().Section("cpu").Build()).ToString()
	if err != nil {
		f.t.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			x, _ := strconv.ParseFloat(v, 64)
			total += x
		}
	}
	return time.Duration(total * float64(time.Second))
}

// BenchmarkDeliverNull runs the deliver stage alone against the null sender
// (no network), as `pushpipe bench --sink null` does: what one deliver
// process costs per device in Go and in Redis, and how fast it drains a
// backlog at the default --in-flight. n is b.N but at least 200,000 devices
// (-benchtime 1000000x for a million); PUSHPIPE_BENCH_INFLIGHT overrides
// the in-flight bound.
func BenchmarkDeliverNull(b *testing.B) {
	n := max(b.N, 200_000)
	inFlight, _ := strconv.Atoi(os.Getenv("PUSHPIPE_BENCH_INFLIGHT"))
	f := newFixture(b)
	devs := make([]testDevice, n)
	for i := range devs {
		u := int64(i + 1)
		devs[i] = testDevice{u, push.IOS, iosToken(u, 0)}
		if i%2 == 1 {
			devs[i] = testDevice{u, push.Android, androidToken(u, 0)}
		}
	}
	f.insertDevices(devs)
	f.createCampaign("bench", `{}`)
	if _, err := f.db.Exec(f.ctx, `VACUUM ANALYZE devices`); err != nil {
		b.Fatal(err)
	}
	f.emitUsers("bench", userRange(n))
	null := &NullSender{}
	b.ResetTimer()
	start, cpu, rcpu, pcpu := time.Now(), processCPU(), f.redisCPU(), postgresCPU()
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: null, push.Android: null}, InFlight: inFlight},
		"bench", 30*time.Second)
	stats := f.waitDone("bench", n, 10*time.Minute)
	cpu, rcpu, pcpu = processCPU()-cpu, f.redisCPU()-rcpu, postgresCPU()-pcpu
	elapsed := time.UnixMilli(stats[pipeline.StatLastMs]).Sub(start)
	b.StopTimer()
	if got := null.Sent(); got != int64(n) {
		b.Fatalf("null sink got %d sends, want %d", got, n)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "sends/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/send")
	b.ReportMetric(float64(rcpu.Microseconds())/float64(n), "redis-cpu-µs/send")
	b.ReportMetric(float64(pcpu.Microseconds())/float64(n), "pg-cpu-µs/send")
}

// postgresCPU is the CPU time so far of every postgres process on this
// machine (the test server's; a machine running another PostgreSQL would
// count it too), from /proc/<pid>/stat.
func postgresCPU() time.Duration {
	var total time.Duration
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ... utime stime are fields 14 and 15.
		open, close := strings.IndexByte(string(stat), '('), strings.LastIndexByte(string(stat), ')')
		if open < 0 || close < open || string(stat[open+1:close]) != "postgres" {
			continue
		}
		f := strings.Fields(string(stat[close+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * time.Second / 100 // clock ticks (USER_HZ 100)
	}
	return total
}
