package pipeline_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// A handler that holds its batch long by design but moves (deliver sending
// at the provider's pace under a low --tps, minutes a batch) says so with
// Batch.Progress, and its stage reads running, not stuck, however long the
// batch takes; once it stops moving it reads stuck after StuckAfter.
func TestBatchThatMovesIsNotStuck(t *testing.T) {
	c, keys := opsRedis(t)
	// Well above the 50 ms between progress notes: at 400 ms a loaded box
	// (-race, a CI beside other tests) once let a gap pass it, and the
	// moving batch read stuck.
	const stuckAfter = 1500 * time.Millisecond
	moving, stop := make(chan bool), make(chan struct{})
	h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		move := true
		for {
			select {
			case move = <-moving:
			case <-tick.C:
				if move {
					b.Progress()
				}
			case <-stop:
				return nil
			case <-ctx.Done():
				return nil
			}
		}
	})
	runDeliver(t, c, keys, false, stuckAfter, h)
	if _, err := pipeline.Emit(t.Context(), c, pipeline.Message{Stream: keys.Stream(pipeline.StreamDeliver, 0), Fields: []string{"n", "1"}}); err != nil {
		t.Fatal(err)
	}
	state := func() pipeline.GroupTotal { return groupOn(t, c, keys, pipeline.StreamDeliver, "deliver") }
	pipelinetest.Eventually(t, 10*time.Second, "deliver working", func() bool { return state().State == pipeline.StateRunning })
	// Three times StuckAfter, moving all along.
	for end := time.Now().Add(3 * stuckAfter); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if g := state(); g.State != pipeline.StateRunning {
			t.Fatalf("a batch that moves read %q: %s", g.State, g.Plain(""))
		}
	}
	moving <- false
	pipelinetest.Eventually(t, 10*time.Second, "deliver stuck once its batch stopped moving", func() bool {
		return state().State == pipeline.StateStuck
	})
	close(stop)
}

// A stage with an express lane serves both lanes with one process, and the
// batch it holds is of one lane: a bulk batch hung reads STUCK on the bulk
// lane only, and the express lane, whose handlers of its own still take
// messages, reads idle.
func TestStuckIsPerLane(t *testing.T) {
	c, keys := opsRedis(t)
	stop := make(chan struct{})
	h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
		if b.Lane == pipeline.Express {
			return nil
		}
		select {
		case <-stop:
		case <-ctx.Done():
		}
		return nil
	})
	runDeliver(t, c, keys, true, 300*time.Millisecond, h)
	t.Cleanup(func() { close(stop) }) // before the runner's cleanup: the hung handler returns
	express := pipeline.Express.Stream(pipeline.StreamDeliver)
	for _, stream := range []string{pipeline.StreamDeliver, express} {
		if _, err := pipeline.Emit(t.Context(), c, pipeline.Message{Stream: keys.Stream(stream, 0), Fields: []string{"n", "1"}}); err != nil {
			t.Fatal(err)
		}
	}
	pipelinetest.Eventually(t, 10*time.Second, "the bulk lane stuck", func() bool {
		return groupOn(t, c, keys, pipeline.StreamDeliver, "deliver").State == pipeline.StateStuck
	})
	// Eventually: the express entry is handled on its own handler, which
	// a loaded machine may run late.
	pipelinetest.Eventually(t, 10*time.Second, "the express lane idle", func() bool {
		return groupOn(t, c, keys, express, "deliver").State == pipeline.StateIdle
	})
	if g := groupOn(t, c, keys, pipeline.StreamDeliver, "deliver"); g.State != pipeline.StateStuck {
		t.Errorf("bulk lane %q with its batch hung: %s", g.State, g.Plain(""))
	}
}

// runDeliver runs a deliver runner (with its express lane if express) on
// partition 0 with quick beats and stuckAfter, until the test ends or stop
// stops it cleanly.
func runDeliver(t *testing.T, c rueidis.Client, keys pipeline.Keys, express bool, stuckAfter time.Duration, h pipeline.Handler) (stop func()) {
	t.Helper()
	r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "deliver", Stream: pipeline.StreamDeliver, Express: express, Consumer: "d1",
		Partitions: []int{0}, Block: 100 * time.Millisecond, AliveEvery: 100 * time.Millisecond, StuckAfter: stuckAfter,
		ShutdownTimeout: 100 * time.Millisecond}, h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
	return stop
}

// Working is what a campaign's progress asks of the stages with work for
// it before calling it queued rather than stalled (campaign.Report): each
// has a running process, and none is stuck. A deliver hung on one batch,
// stopped, or never started does not work; a stage asked about beside a
// working one counts as much.
func TestWorking(t *testing.T) {
	tests := []struct {
		name   string
		run    bool     // a deliver process runs
		hang   bool     // its handler holds its batch without moving
		stop   bool     // it stops cleanly
		groups []string // asked about
		want   bool
	}{
		{"running", true, false, false, []string{"deliver"}, true},
		{"no process", false, false, false, []string{"deliver"}, false},
		{"stuck", true, true, false, []string{"deliver"}, false},
		{"stopped", true, false, true, []string{"deliver"}, false},
		{"another stage not running", true, false, false, []string{"dedupe", "deliver"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, keys := opsRedis(t)
			const stuckAfter = 300 * time.Millisecond
			release := make(chan struct{})
			t.Cleanup(func() { close(release) }) // before the runner's cleanup: a hung handler returns
			h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
				if tt.hang {
					select {
					case <-release:
					case <-ctx.Done():
					}
				}
				return nil
			})
			working := func() bool {
				ok, err := pipeline.Working(t.Context(), c, keys, tt.groups...)
				if err != nil {
					t.Fatal(err)
				}
				return ok
			}
			if !tt.run {
				if working() {
					t.Error("working with no process")
				}
				return
			}
			stop := runDeliver(t, c, keys, false, stuckAfter, h)
			if _, err := pipeline.Emit(t.Context(), c, pipeline.Message{Stream: keys.Stream(pipeline.StreamDeliver, 0), Fields: []string{"n", "1"}}); err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.stop:
				stop()
			case tt.hang:
				// Stuck once its beats say it held the batch for StuckAfter.
				pipelinetest.Eventually(t, 10*time.Second, "deliver stuck", func() bool {
					return groupOn(t, c, keys, pipeline.StreamDeliver, "deliver").State == pipeline.StateStuck
				})
			default:
				pipelinetest.Eventually(t, 10*time.Second, "the entry handled", func() bool {
					return groupOn(t, c, keys, pipeline.StreamDeliver, "deliver").State == pipeline.StateIdle
				})
			}
			if got := working(); got != tt.want {
				t.Errorf("Working(%v) = %v, want %v", tt.groups, got, tt.want)
			}
		})
	}
}

// An entry nobody claimed for StuckAfter while every running process holds
// a batch that moves is not proof of a process to restart: a claim waits
// for a free handler, and with every handler busy (deliver at the
// provider's pace, or held by a capped campaign's entries) the claims wait
// too. The verdict says so then, and names the restart only when some
// process holds nothing: a consumer of the same name, restarted, found its
// leftovers reported as "nobody claims it, restart it" while its handlers
// were all busy.
func TestUnclaimedVerdictWhileEveryHandlerIsBusy(t *testing.T) {
	t.Parallel()
	held := &pipeline.HeldBatch{Stream: "pp:{p3}:deliver", Partition: 3, Entry: "1-0", Entries: 1, Held: time.Second, StuckAfter: time.Minute}
	u := &pipeline.UnclaimedEntry{Stream: "pp:{p5}:deliver", Partition: 5, ID: "2-0", Consumer: "deliver-2", Idle: 3 * time.Minute}
	tests := []struct {
		name string
		give []pipeline.ProcessStatus
		want string // in the verdict
		not  string // not in it
	}{
		{"every process busy", []pipeline.ProcessStatus{
			{Consumer: "deliver-1", Running: true, Holding: held},
			{Consumer: "deliver-2", Running: true, Holding: held},
			{Consumer: "deliver-9", Holding: held}, // not running: says nothing
		}, "every running process (2) holds a batch that moves: a claim waits for a free handler", "restart it"},
		{"one process free", []pipeline.ProcessStatus{
			{Consumer: "deliver-1", Running: true, Holding: held},
			{Consumer: "deliver-2", Running: true},
		}, "no running process claims it (none serves that partition, or its claim loop hangs)", "a free handler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pipeline.GroupTotal{Name: "deliver", State: pipeline.StateStuck, Processes: tt.give, Unclaimed: u}.Plain("")
			if !strings.Contains(got, tt.want) || strings.Contains(got, tt.not) {
				t.Errorf("verdict %q: want %q in it, and not %q", got, tt.want, tt.not)
			}
		})
	}
}
