package ingest_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// cpuClock reads the CPU time used so far by this process, the Redis server
// and the PostgreSQL server (postmaster, live backends and exited ones), so a
// benchmark phase can say where its time went on this shared 2-core box.
type cpuClock struct {
	rdb rueidis.Client
	pg  *pipelinetest.Postgres
}

type cpuTimes struct{ self, redis, postgres time.Duration }

func (c cpuClock) now() cpuTimes {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self := time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
	return cpuTimes{self: self, redis: c.redisCPU(), postgres: c.postgresCPU()}
}

func (a cpuTimes) since(b cpuTimes) cpuTimes {
	return cpuTimes{a.self - b.self, a.redis - b.redis, a.postgres - b.postgres}
}

func (a cpuTimes) String() string {
	f := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s" }
	return "cpu: go " + f(a.self) + ", redis " + f(a.redis) + ", postgres " + f(a.postgres)
}

func (c cpuClock) redisCPU() time.Duration {
	info, err := c.rdb.Do(context.Background(), c.rdb.B().Info().Section("cpu").Build()).ToString()
	if err != nil {
		return 0
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// postgresCPU sums the postmaster's own and reaped children's time with the
// time of its live children, from /proc (Linux).
func (c cpuClock) postgresCPU() time.Duration {
	b, err := os.ReadFile(filepath.Join(c.pg.Dir, "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	master, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	const tick = 10 * time.Millisecond // USER_HZ = 100
	var total time.Duration
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from 3 (state) on
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		num := func(i int) time.Duration { n, _ := strconv.ParseInt(f[i], 10, 64); return time.Duration(n) * tick }
		switch {
		case pid == master: // utime, stime, cutime, cstime are fields 14-17
			total += num(11) + num(12) + num(13) + num(14)
		case ppid == master:
			total += num(11) + num(12)
		}
	}
	return total
}
