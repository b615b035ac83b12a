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
	rdb  rueidis.Client
	pg   *pipelinetest.Postgres
	kids []*child // child processes counted with this one as "go"
}

type cpuTimes struct{ self, redis, postgres time.Duration }

func (c cpuClock) now() cpuTimes {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self := time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
	for _, k := range c.kids {
		self += procCPU(k.cmd.Process.Pid)
	}
	return cpuTimes{self: self, redis: c.redisCPU(), postgres: c.postgresCPU()}
}

func (a cpuTimes) since(b cpuTimes) cpuTimes {
	return cpuTimes{a.self - b.self, a.redis - b.redis, a.postgres - b.postgres}
}

func (a cpuTimes) plus(b cpuTimes) cpuTimes {
	return cpuTimes{a.self + b.self, a.redis + b.redis, a.postgres + b.postgres}
}

func (a cpuTimes) String() string {
	f := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s" }
	return "cpu: go " + f(a.self) + ", redis " + f(a.redis) + ", postgres " + f(a.postgres)
}

func (c cpuClock) redisCPU() time.Duration {
	if c.rdb == nil {
		return 0
	}
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
	if c.pg == nil {
		return 0
	}
	b, err := os.ReadFile(filepath.Join(c.pg.Dir, "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	master, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	var total time.Duration
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		f := procStat(pid)
		if f == nil {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		switch {
		case pid == master: // utime, stime, cutime, cstime
			total += ticks(f[11]) + ticks(f[12]) + ticks(f[13]) + ticks(f[14])
		case ppid == master:
			total += ticks(f[11]) + ticks(f[12])
		}
	}
	return total
}

// procCPU is the user+system time of a live process.
func procCPU(pid int) time.Duration {
	f := procStat(pid)
	if f == nil {
		return 0
	}
	return ticks(f[11]) + ticks(f[12])
}

// procStat returns /proc/PID/stat from field 3 (state) on, so f[1] is the
// parent pid and f[11], f[12], f[13], f[14] are utime, stime, cutime, cstime.
func procStat(pid int) []string {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 15 {
		return nil
	}
	return f
}

func ticks(s string) time.Duration {
	n, _ := strconv.ParseInt(s, 10, 64)
	return time.Duration(n) * 10 * time.Millisecond // USER_HZ = 100
}
