package drills

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkCampaignPerProcess runs whole campaigns through the process
// pipeline and reports, per stage process, the CPU it spent per recipient
// and its peak RSS: the per-process figures deploy/CAPACITY.md scales from.
// Every process (and the fake provider, and the servers) shares this
// machine's cores, so the end-to-end rate is a floor, the CPU cost is not.
//
//	go test -run '^$' -bench CampaignPerProcess -benchtime 1x ./bench/drills/
func BenchmarkCampaignPerProcess(b *testing.B) {
	for _, sink := range []string{"fake", "null"} {
		b.Run("sink="+sink, func(b *testing.B) {
			opts := rigOptions{Users: 200_000, RangeSize: 5000}
			if sink == "null" {
				opts.Deliver = []string{"--sink", "null"}
			}
			r := newRig(b, opts)
			b.ResetTimer()
			for i := range b.N {
				before, redisBefore := r.usage(), r.redisUsage()
				start := time.Now()
				id := fmt.Sprintf("bench-%s-%d", sink, i)
				r.createCampaign(id)
				r.waitDone(id, 10*time.Minute)
				elapsed := time.Since(start)
				after, redisAfter := r.usage(), r.redisUsage()
				b.ReportMetric(float64(opts.Users)/elapsed.Seconds(), "recipients/s")
				// Redis: CPU per recipient, and memory kept per recipient
				// (seen and sent marks, counters and the retained stream
				// entries, until the campaign's TTL and the retention pass).
				b.ReportMetric(float64((redisAfter.cpu-redisBefore.cpu).Microseconds())/float64(opts.Users), "redis-cpu-µs/recipient")
				b.ReportMetric(float64(redisAfter.peakRSS-redisBefore.peakRSS)/float64(opts.Users), "redis-B/recipient")
				for _, name := range []string{"split", "resolve", "dedupe", "deliver", "fakeprovider"} {
					cpu := after[name].cpu - before[name].cpu
					b.ReportMetric(float64(cpu.Microseconds())/float64(opts.Users), name+"-cpu-µs/recipient")
					b.ReportMetric(float64(after[name].peakRSS)/(1<<20), name+"-peak-MiB")
				}
			}
		})
	}
}

type procUsage struct {
	cpu     time.Duration
	peakRSS int64 // bytes
}

// usage reads each process's CPU time (utime+stime) and peak RSS from /proc.
func (r *rig) usage() map[string]procUsage {
	out := map[string]procUsage{}
	for _, p := range r.procs {
		pid := strconv.Itoa(p.cmd.Process.Pid)
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue
		}
		// Fields after the ")" closing the command name: state is field 3,
		// utime and stime are fields 14 and 15, in clock ticks (100 Hz).
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		u := procUsage{cpu: time.Duration(ut+st) * 10 * time.Millisecond}
		status, _ := os.ReadFile("/proc/" + pid + "/status")
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "VmHWM:") {
				kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
				u.peakRSS = kb << 10
			}
		}
		out[p.name] = u
	}
	return out
}

// redisUsage is Redis's CPU (INFO cpu) and used_memory (in peakRSS).
func (r *rig) redisUsage() procUsage {
	info, err := r.rdb.Do(context.Background(), r.rdb.B().Info().Section("all").Build()).ToString()
	if err != nil {
		r.t.Fatal(err)
	}
	var u procUsage
	for _, line := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "used_cpu_sys", "used_cpu_user":
			f, _ := strconv.ParseFloat(v, 64)
			u.cpu += time.Duration(f * float64(time.Second))
		case "used_memory":
			u.peakRSS, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return u
}
