package bench

import (
	"os"
	"testing"
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

// diskReadKB finds pgpgin in /proc/vmstat: a machine that booted has read
// its disk, and reading a file the page cache does not hold adds to it.
func TestDiskReadKB(t *testing.T) {
	if n := diskReadKB(); n <= 0 {
		t.Fatalf("diskReadKB() = %d, want the kilobytes read since boot", n)
	}
}
