package pipeline_test

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// groupOf is the status of group on stream, zero before it exists.
func groupOf(t *testing.T, keys pipeline.Keys, stream, group string) pipeline.GroupTotal {
	t.Helper()
	return groupOn(t, client(t, env.Redis.Addr), keys, stream, group)
}

// groupOn is groupOf on the Redis of c.
func groupOn(t *testing.T, c rueidis.Client, keys pipeline.Keys, stream, group string) pipeline.GroupTotal {
	t.Helper()
	st, err := pipeline.Status(t.Context(), c, keys, stream)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range st[0].Groups {
		if g.Name == group {
			return g
		}
	}
	return pipeline.GroupTotal{} // not created yet

}

// A stage process blocked on a quiet stream reads idle, and one with work
// running; one SIGSTOPped or SIGKILLed reads stopped once three beats are
// missed, and one stopped cleanly (SIGTERM) at once. Before the liveness
// beats, status had only XINFO CONSUMERS, whose idle time a read that
// returns nothing does not reset on Redis 7.0: the live, idle process and
// the dead one looked the same.
func TestStatusTellsStoppedFromIdle(t *testing.T) {
	const every = 300 * time.Millisecond // stale after 900ms
	t.Setenv("PIPELINE_ALIVE", every.String())
	tests := []struct {
		name   string
		sig    syscall.Signal
		atOnce bool // stopped as soon as the process exits, before its beats go stale
	}{
		{"sigterm", syscall.SIGTERM, true},
		{"sigkill", syscall.SIGKILL, false},
		{"sigstop", syscall.SIGSTOP, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := testKeys()
			w := startWorker(t, env.Redis.Addr, keys, "quiet:out", "w1", 0)
			pipelinetest.Eventually(t, 10*time.Second, "worker reads idle", func() bool {
				g := groupOf(t, keys, "quiet", "quiet")
				return g.State == pipeline.StateIdle && g.Running == 1
			})
			// Idle for longer than the stale window: still idle, not stopped.
			// Waited for, not read once: on a loaded box (load ~14) the
			// worker's beat came 1 s apart, past the stale window of 900ms,
			// and it read stopped for that instant. A live worker beats
			// again and reads running; one status took for dead by its idle
			// time (XINFO CONSUMERS), which grows while it waits, never does.
			time.Sleep(3 * every)
			pipelinetest.Eventually(t, 10*time.Second, "a live worker on a quiet stream idle, w1 running", func() bool {
				g := groupOf(t, keys, "quiet", "quiet")
				return g.State == pipeline.StateIdle && g.Running == 1 &&
					len(g.Processes) == 1 && g.Processes[0].Consumer == "w1" && g.Processes[0].Running
			})
			if tt.sig == syscall.SIGSTOP {
				defer w.cmd.Process.Signal(syscall.SIGCONT)
			}
			signaled := time.Now()
			if err := w.cmd.Process.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			if tt.atOnce {
				select {
				case <-w.done:
					w.done <- nil
				case <-time.After(10 * time.Second):
					t.Fatal("worker did not exit on SIGTERM")
				}
				g := groupOf(t, keys, "quiet", "quiet")
				if g.State != pipeline.StateStopped || len(g.Processes) != 1 || !g.Processes[0].Stopped {
					t.Fatalf("right after a clean stop: %+v, want stopped, w1 stopped cleanly", g)
				}
				if since := time.Since(signaled); since >= 3*every {
					t.Logf("the worker took %v to exit: the check above did not tell a clean stop from stale beats", since)
				}
				return
			}
			produce(t, client(t, env.Redis.Addr), keys, "quiet", 10) // work nobody takes now
			pipelinetest.Eventually(t, 10*time.Second, "worker reads stopped", func() bool {
				return groupOf(t, keys, "quiet", "quiet").State == pipeline.StateStopped
			})
			if since := time.Since(signaled); since < 2*every {
				t.Errorf("read stopped %v after the signal, before two beats were missed", since)
			}
			g := groupOf(t, keys, "quiet", "quiet")
			if len(g.Processes) != 1 || g.Processes[0].Stopped || g.Processes[0].Running || g.Processes[0].LastSeen.IsZero() {
				t.Fatalf("%+v, want w1 last seen, not running, not stopped cleanly", g.Processes)
			}
			if say := g.Plain("pushpipe quiet"); !containsAll(say, "not running: last seen", "(w1)", "stopped reporting", "10 entries wait", "restart `pushpipe quiet`") {
				t.Errorf("Plain says %q", say)
			}
		})
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// `status --remove-idle` leaves the consumers of a running process alone,
// however long it waited on a quiet stream: on Redis 7.0 its idle time
// grows as a dead consumer's, and removing it made a live stage vanish
// from status (0 consumers) until an entry came.
func TestRemoveIdleKeepsRunningProcesses(t *testing.T) {
	c, keys := opsRedis(t)
	h := pipeline.HandlerFunc(func(context.Context, *pipeline.Batch) error { return nil })
	r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "deliver", Stream: pipeline.StreamDeliver, Consumer: "live",
		Partitions: []int{0}, Block: 100 * time.Millisecond, AliveEvery: time.Second}, h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
	opsDo(t, c, c.B().XgroupCreateconsumer().Key(keys.Stream(pipeline.StreamDeliver, 0)).Group("deliver").Consumer("dead").Build())
	time.Sleep(50 * time.Millisecond)

	removed, err := pipeline.RemoveIdleConsumers(t.Context(), c, keys, 10*time.Millisecond, pipeline.StreamDeliver)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].Consumer != "dead" {
		t.Fatalf("removed %+v, want the dead consumer alone", removed)
	}
}

// Plain names the processes that stopped reporting together (a fleet
// SIGSTOPped or cut off at once), not only the last one seen: "(deliver-2)"
// read as if deliver-1 were fine.
func TestPlainNamesTheProcessesThatStopped(t *testing.T) {
	at := time.Date(2026, 12, 4, 21, 0, 0, 0, time.UTC)
	seen := func(names ...string) []pipeline.ProcessStatus {
		var ps []pipeline.ProcessStatus
		for i, n := range names {
			ps = append(ps, pipeline.ProcessStatus{Consumer: n, LastSeen: at.Add(-time.Duration(i) * time.Second), Ago: 2*time.Minute + time.Duration(i)*time.Second})
		}
		return ps
	}
	old := pipeline.ProcessStatus{Consumer: "deliver-old", LastSeen: at.Add(-time.Hour), Ago: time.Hour}
	tests := []struct {
		name string
		give []pipeline.ProcessStatus
		want string
	}{
		{"one", seen("deliver-1"), "last seen 2m ago (deliver-1), then"},
		{"two at once", seen("deliver-2", "deliver-1"), "last seen 2m ago (2 processes: deliver-2, deliver-1), then"},
		{"five at once", seen("d5", "d4", "d3", "d2", "d1"), "(5 processes: d5, d4, d3 and 2 more)"},
		{"one long gone beside", append(seen("deliver-1"), old), "last seen 2m ago (deliver-1), then"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := pipeline.GroupTotal{Name: "deliver", State: pipeline.StateStopped, Processes: tt.give}
			if got := g.Plain("pushpipe deliver"); !strings.Contains(got, tt.want) {
				t.Errorf("Plain says %q, want %q in it", got, tt.want)
			}
		})
	}
}

// A webhook receiver's group that no process runs says how to retire it:
// results is trimmed only below what every group read, so a receiver
// retired for good keeps every event in Redis until its group goes. A
// stage's group, which must run, does not.
func TestPlainSaysHowToRetireAReceiver(t *testing.T) {
	stopped := []pipeline.ProcessStatus{{Consumer: "x-1", Stopped: true, Ago: time.Hour}}
	tests := []struct {
		name, group string
		give        []pipeline.ProcessStatus
		want        bool
	}{
		{"receiver stopped", "analytics", stopped, true},
		{"receiver gone long ago", "analytics", nil, true},
		{"stage stopped", "deliver", stopped, false},
		{"stage gone long ago", "split", nil, false},
		// The webhook stage's own group is the default receiver's.
		{"default receiver", "webhook", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := pipeline.GroupTotal{Name: tt.group, State: pipeline.StateStopped, Processes: tt.give}
			got := g.Plain(pipeline.StartCommand(tt.group))
			if has := strings.Contains(got, "pushpipe results retire "+tt.group); has != tt.want {
				t.Errorf("Plain says %q: retire named %v, want %v", got, has, tt.want)
			}
		})
	}
}
