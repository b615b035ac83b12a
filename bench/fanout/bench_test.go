package fanout

import (
	"context"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/pipeline/schema"
	"github.com/pushpipe/pushpipe/stages/dedupe"
	"github.com/pushpipe/pushpipe/stages/resolve"
	"github.com/pushpipe/pushpipe/stages/split"
)

// BenchmarkFanout sends one campaign to every subscriber of one channel
// (PUSHPIPE_BENCH_SUBSCRIBERS, default 1M; the figure is 10M)
// through split, resolve and dedupe, run in this process on standalone Redis
// and a PostgreSQL of its own, to the deliver streams. It reports, from the
// trigger (just before campaign.Create):
//
//	first_ms  the first deliver entry (its stream id's time)
//	last_ms   the last deliver entry
//	floor_ms  right before each campaign, one COPY (SELECT user_id ...) TO
//	          STDOUT of the channel: reading the ids once, nothing else done
//	last/floor
//	last_range_ms  when split emitted its last range
//	marks_MB  Redis memory of the campaign's dedupe marks
//
// and checks that every subscriber came out exactly once.
func BenchmarkFanout(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("PUSHPIPE_BENCH_SUBSCRIBERS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	url, db := benchDatabase(b, n)
	rdb, err := pipeline.NewRedis(env.Redis.Addr)
	if err != nil {
		b.Fatal(err)
	}
	defer rdb.Close()

	var first, last, splitLast, floor time.Duration
	var marks int64
	var cpuGo, cpuRedis, cpuPG time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		if err := rdb.Do(ctx, rdb.B().Flushall().Build()).Error(); err != nil {
			b.Fatal(err)
		}
		f := &fixture{t: b, addrs: env.Redis.Addr, dbURL: url, rdb: rdb, db: db,
			keys: pipeline.NewKeys("bench"+strconv.Itoa(i), pipeline.DefaultPartitions)}
		// The floor right before each campaign, so that both see the same
		// load on this shared machine.
		floor += copyFloor(b, db)
		stop := benchStages(b, f)
		goCPU, redisCPU, pgCPU := selfCPU(), redisCPUTime(b, f), treeCPU(postmasterPID(b))
		b.StartTimer()
		trigger := time.Now()
		c, _ := f.create(campaign.Campaign{App: "a", Channels: []string{"live"}, Title: "Goal!"})
		f.settled(c.ID, 10*time.Minute)
		b.StopTimer()
		cpuGo += selfCPU() - goCPU
		cpuRedis += redisCPUTime(b, f) - redisCPU
		cpuPG += treeCPU(postmasterPID(b)) - pgCPU
		stop()
		lo, hi := streamSpan(b, f, pipeline.StreamDeliver)
		first += time.UnixMilli(lo).Sub(trigger)
		last += time.UnixMilli(hi).Sub(trigger)
		_, cut := streamSpan(b, f, pipeline.StreamRanges)
		splitLast += time.UnixMilli(cut).Sub(trigger)
		checkEveryoneOnce(b, f, c.ID, n)
		marks += marksBytes(b, f, c.ID)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(first), "first_ms")
	b.ReportMetric(ms(last), "last_ms")
	b.ReportMetric(ms(floor), "floor_ms")
	b.ReportMetric(ms(last)/ms(floor), "last/floor")
	b.ReportMetric(ms(splitLast), "last_range_ms")
	b.ReportMetric(float64(marks)/float64(b.N)/1e6, "marks_MB")
	// Where the CPU went, per campaign: this process (the three stages and
	// their clients), redis-server, PostgreSQL (every backend).
	b.ReportMetric(ms(cpuGo), "stages_cpu_ms")
	b.ReportMetric(ms(cpuRedis), "redis_cpu_ms")
	b.ReportMetric(ms(cpuPG), "pg_cpu_ms")
}

// marksBytes is MEMORY USAGE of the campaign's marks in every partition.
func marksBytes(b *testing.B, f *fixture, id string) int64 {
	var total int64
	for p := range f.keys.Partitions {
		for _, k := range []string{f.keys.Seen(p, id), f.keys.Muted(p, id)} {
			n, err := f.rdb.Do(context.Background(), f.rdb.B().MemoryUsage().Key(k).Samples(0).Build()).AsInt64()
			if err != nil && !rueidis.IsRedisNil(err) {
				b.Fatal(err)
			}
			total += n
		}
	}
	return total
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPUTime is redis-server's CPU time from INFO cpu.
func redisCPUTime(b *testing.B, f *fixture) time.Duration {
	info, err := f.rdb.Do(context.Background(), f.rdb.B().Info().Section("cpu").Build()).ToString()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			x, _ := strconv.ParseFloat(v, 64)
			total += x
		}
	}
	return time.Duration(total * float64(time.Second))
}

func postmasterPID(b *testing.B) int {
	raw, err := os.ReadFile(filepath.Join(benchData.pg.Dir, "data", "postmaster.pid"))
	if err != nil {
		b.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.SplitN(string(raw), "\n", 2)[0])
	return pid
}

// treeCPU is the CPU time of a process, of its children that ended, and of
// its live children (PostgreSQL: the postmaster and its backends).
func treeCPU(pid int) time.Duration {
	var ticks int64
	add := func(p int, withReaped bool) {
		f := procStat(p)
		if len(f) < 17 {
			return
		}
		for i, idx := range []int{13, 14, 15, 16} { // utime stime cutime cstime
			if i >= 2 && !withReaped {
				break
			}
			v, _ := strconv.ParseInt(f[idx], 10, 64)
			ticks += v
		}
	}
	add(pid, true)
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		child, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if f := procStat(child); len(f) > 3 && f[3] == strconv.Itoa(pid) {
			add(child, false)
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

// procStat is /proc/PID/stat split into fields (the command name, which
// may hold spaces, collapsed into one).
func procStat(pid int) []string {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return append([]string{"pid", "comm"}, strings.Fields(s[i+1:])...)
}

// benchData is the benchmark's PostgreSQL, seeded once per test process
// (Go runs a benchmark function more than once to size b.N; seeding 10M
// rows takes a minute). cleanupAfter closes it.
var benchData struct {
	sync.Mutex
	pg  *pipelinetest.Postgres
	url string
	db  *pgxpool.Pool
	n   int
}

func benchDatabase(b *testing.B, n int) (string, *pgxpool.Pool) {
	b.Helper()
	benchData.Lock()
	defer benchData.Unlock()
	if benchData.db != nil && benchData.n == n {
		return benchData.url, benchData.db
	}
	closeBenchData()
	ctx := context.Background()
	// A server of its own with room for the table and its index in shared
	// buffers, as a production database would have.
	pg, err := pipelinetest.StartPostgres(pipelinetest.PostgresOptions{Settings: map[string]string{
		"shared_buffers": "1536MB", "max_wal_size": "8GB", "checkpoint_timeout": "30min"}})
	if err != nil {
		b.Fatal(err)
	}
	benchData.pg = pg
	url, err := pg.NewDatabase(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := schema.Migrate(ctx, url); err != nil {
		b.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 16
	db, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	seedStart := time.Now()
	for _, q := range []string{
		`INSERT INTO subscriptions (channel, user_id) SELECT 'live', g FROM generate_series(1, ` + strconv.Itoa(n) + `) g`,
		`VACUUM ANALYZE subscriptions`,
		`CHECKPOINT`,                         // no seeding writes left to flush while measuring
		`SELECT count(*) FROM subscriptions`, // warm the cache like a live system's
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("seeded %d subscribers in %s", n, time.Since(seedStart).Round(time.Millisecond))
	benchData.url, benchData.db, benchData.n = url, db, n
	return url, db
}

func closeBenchData() {
	if benchData.db != nil {
		benchData.db.Close()
	}
	if benchData.pg != nil {
		benchData.pg.Close()
	}
	benchData.db, benchData.pg = nil, nil
}

// copyFloor times the cheapest way to read the channel's ids once: the
// server streaming them in COPY format, the client discarding them. Best of
// two, the cache warm.
func copyFloor(b *testing.B, db *pgxpool.Pool) time.Duration {
	b.Helper()
	ctx := context.Background()
	conn, err := db.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	best := time.Duration(1<<63 - 1)
	for range 2 {
		start := time.Now()
		if _, err := conn.Conn().PgConn().CopyTo(ctx, io.Discard,
			`COPY (SELECT user_id FROM subscriptions WHERE channel = 'live') TO STDOUT`); err != nil {
			b.Fatal(err)
		}
		best = min(best, time.Since(start))
	}
	return best
}

// benchStages runs split, resolve and dedupe as `pushpipe all` would: one
// runner each, their default settings.
func benchStages(b *testing.B, f *fixture) (stop func()) {
	log := zerolog.Nop()
	opts := func(stage, stream string, batch int) pipeline.Options {
		return pipeline.Options{Stage: stage, Stream: stream, Consumer: stage + "-bench", BatchSize: batch}
	}
	segments, _ := strconv.Atoi(os.Getenv("PUSHPIPE_BENCH_SEGMENTS")) // 0: split's default
	sp := split.New(split.Config{Redis: f.rdb, DB: f.db, Keys: f.keys, Log: log, Segments: segments})
	rs := resolve.New(resolve.Config{Redis: f.rdb, DB: f.db, Keys: f.keys, Log: log, Parallel: 2})
	dd := dedupe.New(dedupe.Config{Redis: f.rdb, Keys: f.keys, Log: log})
	runners := []*pipeline.Runner{
		pipeline.NewRunner(f.rdb, f.keys, opts("split", pipeline.StreamCampaigns, 1), sp, log, nil),
		pipeline.NewRunner(f.rdb, f.keys, opts("resolve", pipeline.StreamRanges, 2), rs, log, nil),
		pipeline.NewRunner(f.rdb, f.keys, opts("dedupe", pipeline.StreamDedupe, 50), dd, log, nil),
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, r := range runners {
		wg.Go(func() { r.Run(ctx) })
	}
	pipelinetest.Eventually(b, 10*time.Second, "stages ready", func() bool {
		for _, r := range runners {
			if !r.Ready() {
				return false
			}
		}
		return true
	})
	return func() { cancel(); wg.Wait() }
}

// streamSpan is the unix ms of the first and the last entry of a stream's
// partitions, from their ids (Redis's clock, this machine's).
func streamSpan(b *testing.B, f *fixture, stream string) (first, last int64) {
	b.Helper()
	ctx := context.Background()
	first = 1<<63 - 1
	for _, s := range f.keys.Streams(stream) {
		for _, cmd := range []bool{true, false} {
			q := f.rdb.B().Xrange().Key(s).Start("-").End("+").Count(1).Build()
			if !cmd {
				q = f.rdb.B().Xrevrange().Key(s).End("+").Start("-").Count(1).Build()
			}
			xs, err := f.rdb.Do(ctx, q).AsXRange()
			if err != nil {
				b.Fatal(err)
			}
			for _, x := range xs {
				ms, _ := strconv.ParseInt(strings.SplitN(x.ID, "-", 2)[0], 10, 64)
				first, last = min(first, ms), max(last, ms)
			}
		}
	}
	return first, last
}

// checkEveryoneOnce decodes every deliver entry: users 1..n, each once.
func checkEveryoneOnce(b *testing.B, f *fixture, id string, n int) {
	b.Helper()
	seen := make([]uint64, n/64+1)
	total := 0
	for p := range f.keys.Partitions {
		start := "-"
		for {
			xs, err := f.rdb.Do(context.Background(), f.rdb.B().Xrange().Key(f.keys.Stream(pipeline.StreamDeliver, p)).
				Start(start).End("+").Count(1000).Build()).AsXRange()
			if err != nil {
				b.Fatal(err)
			}
			for _, x := range xs {
				ids, err := pipeline.DecodeIDs(x.FieldValues[pipeline.FieldUsers])
				if err != nil || x.FieldValues[pipeline.FieldCampaign] != id {
					b.Fatalf("deliver entry %s: %v %v", x.ID, x.FieldValues[pipeline.FieldCampaign], err)
				}
				for _, u := range ids {
					if u < 1 || u > int64(n) || seen[u/64]&(1<<(u%64)) != 0 {
						b.Fatalf("user %d forwarded twice or out of the channel", u)
					}
					seen[u/64] |= 1 << (u % 64)
				}
				total += len(ids)
			}
			if len(xs) < 1000 {
				break
			}
			start = "(" + xs[len(xs)-1].ID
		}
	}
	ones := 0
	for _, w := range seen {
		ones += bits.OnesCount64(w)
	}
	if total != n || ones != n {
		b.Fatalf("forwarded %d ids (%d distinct), want %d", total, ones, n)
	}
}
