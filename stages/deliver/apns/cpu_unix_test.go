//go:build unix

package apns

import (
	"syscall"
	"time"
)

// processCPU is the CPU time this process used so far (user + system). The
// benches report CPU per send from it because wall-clock throughput on a
// shared machine says more about the neighbours than about the code.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
