package bench

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// hugePages reads smaps: this process's own is readable and has no
// hugetlb mapping; a process that does not exist is unknown.
func TestHugePages(t *testing.T) {
	tests := []struct {
		name string
		pid  int
		want []string
	}{
		{"this process", os.Getpid(), []string{"no", "transparent"}},
		{"no process", 1 << 30, []string{"unknown"}},
		{"no pid", 0, []string{"unknown"}},
	}
	for _, tt := range tests {
		got := hugePages(tt.pid)
		ok := false
		for _, w := range tt.want {
			ok = ok || got == w
		}
		if !ok {
			t.Errorf("%s: hugePages(%d) = %q, want one of %q", tt.name, tt.pid, got, tt.want)
		}
	}
}

// sampleMachine reads /proc: a machine that booted has run and read its
// disk, and a busy loop adds to the CPU it spent.
func TestSampleMachine(t *testing.T) {
	before := sampleMachine()
	if before.busy <= 0 || before.readKB <= 0 {
		t.Fatalf("sampleMachine() = %+v, want the CPU seconds and kilobytes read since boot", before)
	}
	// Spin until this process has run 200 ms (not 200 ms of wall time: on a
	// loaded machine it may get a fraction of that), which the machine's
	// busy time counts, give or take a tick.
	for start := selfCPU(t); selfCPU(t)-start < 200*time.Millisecond; {
	}
	if u := sampleMachine().since(before); u.BusyS < 0.15 {
		t.Errorf("200 ms of a busy loop: %+v, want at least 0.15 CPU s busy", u)
	}
}

// selfCPU is the CPU time this process has used.
func selfCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
