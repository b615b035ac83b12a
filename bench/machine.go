package bench

import (
	"os"
	"strconv"
	"strings"
)

// MachineUse is what the whole machine did over a span of a run, from
// /proc: on a VM the host may drop a page cache (this one runs DAMON's
// pageout for memory idle 60 s) or take CPU time, and either slows the
// campaign or the floor alone.
type MachineUse struct {
	BusyS      float64 `json:"busy_s"`       // CPU seconds spent running, every core
	StealS     float64 `json:"steal_s"`      // CPU seconds the host took
	IOWaitS    float64 `json:"iowait_s"`     // idle CPU seconds with a disk read or write outstanding
	DiskReadMB float64 `json:"disk_read_mb"` // read from block devices
}

// machineSample is the machine's counters since boot.
type machineSample struct {
	busy, steal, iowait float64 // seconds
	readKB              int64
}

// userHZ is the unit of /proc/stat's CPU times: USER_HZ, 100 on every
// Linux architecture Go runs on.
const userHZ = 100

// sampleMachine reads /proc/stat's cpu line and /proc/vmstat's pgpgin;
// what it cannot read stays 0.
func sampleMachine() machineSample {
	var m machineSample
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		// cpu user nice system idle iowait irq softirq steal ...
		f := strings.Fields(line)
		tick := func(i int) float64 {
			if i >= len(f) {
				return 0
			}
			v, _ := strconv.ParseFloat(f[i], 64)
			return v / userHZ
		}
		if len(f) > 0 && f[0] == "cpu" {
			m.busy = tick(1) + tick(2) + tick(3) + tick(6) + tick(7)
			m.iowait, m.steal = tick(5), tick(8)
		}
	}
	if b, err := os.ReadFile("/proc/vmstat"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "pgpgin "); ok {
				m.readKB, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
	}
	return m
}

// since is what the machine did from earlier to m.
func (m machineSample) since(earlier machineSample) MachineUse {
	return MachineUse{BusyS: m.busy - earlier.busy, StealS: m.steal - earlier.steal, IOWaitS: m.iowait - earlier.iowait,
		DiskReadMB: float64(m.readKB-earlier.readKB) / 1024}
}
