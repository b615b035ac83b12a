package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSuperviseStartsEndedProcesses: while dev serves, a process that is
// killed is started again, and dev says how it ended and what its log
// said; one that keeps dying is left down after restartBudget tries,
// said once. Real processes (sh), a real kill.
func TestSuperviseStartsEndedProcesses(t *testing.T) {
	f := &Fleet{Bin: "/bin/sh", LogDir: t.TempDir()}
	steady, err := f.Add("steady", "-c", false, nil, "echo up; exec sleep 60")
	if err != nil {
		t.Fatal(err)
	}
	failing, err := f.Add("failing", "-c", false, nil, "echo bad flag; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.StopAll(5 * time.Second) })
	var mu sync.Mutex
	var out strings.Builder
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(&out, format+"\n", args...)
	}
	said := func() string {
		mu.Lock()
		defer mu.Unlock()
		return out.String()
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { supervise(ctx, f, 50*time.Millisecond, say); close(done) }()
	defer func() { cancel(); <-done }()

	for start := time.Now(); !strings.Contains(steady.LogTail(100), "up"); time.Sleep(10 * time.Millisecond) { // started for sure
		if time.Since(start) > 10*time.Second {
			t.Fatal("sh did not start")
		}
	}
	if err := steady.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for (steady.Restarts() < 1 || steady.Exited() || !strings.Contains(said(), "failing ended again")) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := said()
	if steady.Exited() || steady.Restarts() != 1 || !strings.Contains(got, "steady ended (signal: killed); starting it again") ||
		!strings.Contains(got, "  up") {
		t.Errorf("killed process: running %v, restarts %d; said:\n%s", !steady.Exited(), steady.Restarts(), got)
	}
	if failing.Restarts() != restartBudget || !failing.Exited() ||
		!strings.Contains(got, fmt.Sprintf("failing ended again (exit status 3), %d times within 1m0s: not starting it again", restartBudget+1)) ||
		!strings.Contains(got, "  bad flag") {
		t.Errorf("a process that keeps dying: restarts %d, want %d and then left down; said:\n%s", failing.Restarts(), restartBudget, got)
	}
	time.Sleep(200 * time.Millisecond) // a few more looks: nothing more to say about it
	if n := strings.Count(said(), "failing ended again"); n != 1 {
		t.Errorf("the process left down was reported %d times, want once:\n%s", n, said())
	}
}
