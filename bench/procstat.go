package bench

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"

	"github.com/redis/rueidis"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100

// ProcUsage is a process's CPU time so far and its resident memory.
type ProcUsage struct {
	CPUSeconds float64
	RSSBytes   int64
}

// readUsage reads /proc/PID/stat (utime+stime) and /proc/PID/status (VmRSS).
func readUsage(pid int) (ProcUsage, bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ProcUsage{}, false
	}
	// The command name may hold spaces: fields are counted after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return ProcUsage{}, false
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 || f[0] == "Z" {
		return ProcUsage{}, false
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	u := ProcUsage{CPUSeconds: (ut + st) / clockTicks}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err == nil {
		for line := range strings.SplitSeq(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				u.RSSBytes = kb << 10
			}
		}
	}
	return u, true
}

// childrenOf lists the direct children of pid (PostgreSQL's backends).
func childrenOf(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	want := strconv.Itoa(pid)
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 1 && f[1] == want {
			out = append(out, c)
		}
	}
	return out
}

// treeUsage sums the CPU of a process and its children (postgres and its
// backends; the CPU of backends that ended is lost, but the stages keep their
// pools' backends for the whole run). RSS is the largest member's: backends
// map the same shared buffers, so a sum would count them many times.
func treeUsage(pid int) (ProcUsage, bool) {
	total, ok := readUsage(pid)
	if !ok {
		return total, false
	}
	for _, c := range childrenOf(pid) {
		if u, ok := readUsage(c); ok {
			total.CPUSeconds += u.CPUSeconds
			total.RSSBytes = max(total.RSSBytes, u.RSSBytes)
		}
	}
	return total, true
}

// redisPID asks a local redis-server its process id (0 if it cannot tell).
func redisPID(addr string) int {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		return 0
	}
	defer c.Close()
	info, err := c.Do(context.Background(), c.B().Info().Section("server").Build()).ToString()
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, _ := strconv.Atoi(v)
			return pid
		}
	}
	return 0
}

// hugePages says how much of a process's memory is in pages larger than
// 4 kB, from /proc/PID/smaps: "hugetlb" (PostgreSQL's shared buffers with
// huge_pages and vm.nr_hugepages), "transparent" (THP, e.g. Redis with
// disable-thp no), "no", or "unknown" when smaps cannot be read (another
// user's process). On this project's VM a page walk is dear: PostgreSQL
// spent 16 CPU-s on the 10M campaign with its buffers in huge pages, 28
// without (bench/RESULTS.md), so a report says which it measured.
func hugePages(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps")
	if err != nil || pid == 0 {
		return "unknown"
	}
	thp := false
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "KernelPageSize":
			if v != "4 kB" {
				return "hugetlb"
			}
		case "AnonHugePages", "ShmemPmdMapped":
			thp = thp || v != "0 kB"
		}
	}
	if thp {
		return "transparent"
	}
	return "no"
}
