package pipeline_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// A group that has read its stream's last entry has no lag, whatever
// Redis's entries-read says: after restarts Redis 7.0 counted groups short of
// entries-added, and split's backpressure, status and `make dev` waited on
// work that did not exist. XGROUP SETID ... ENTRIESREAD sets the count as
// Redis had it wrong. A real lag stays.
func TestStaleLagIsDropped(t *testing.T) {
	c, _ := opsRedis(t)
	ctx := t.Context()
	tests := []struct {
		name        string
		read        int64 // entries the group reads of 3
		entriesRead int64 // what Redis is made to count (-1: left as it is)
		lag         int64
	}{
		{"read every entry, miscounted", 3, 1, 0},
		{"read every entry", 3, -1, 0},
		{"one entry unread, miscounted", 2, 1, 2},
		{"nothing read", 0, -1, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "lag:" + tt.name
			if err := pipeline.CreateGroup(ctx, c, key, "g"); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: key, Fields: []string{"x", "1"}}); err != nil {
					t.Fatal(err)
				}
			}
			if tt.read > 0 {
				res, err := c.Do(ctx, c.B().Xreadgroup().Group("g", "c").Count(tt.read).Streams().Key(key).Id(">").Build()).AsXRead()
				if err != nil {
					t.Fatal(err)
				}
				es := res[key]
				if tt.entriesRead >= 0 {
					if err := c.Do(ctx, c.B().XgroupSetid().Key(key).Group("g").Id(es[len(es)-1].ID).Entriesread(tt.entriesRead).Build()).Error(); err != nil {
						t.Fatal(err)
					}
				}
			}
			groups, err := pipeline.StreamGroups(ctx, c, []string{key})
			if err != nil {
				t.Fatal(err)
			}
			if len(groups[0]) != 1 || groups[0][0].Lag != tt.lag {
				t.Errorf("groups %+v, want lag %d", groups[0], tt.lag)
			}
		})
	}
}

// Where a group begins when a runner creates it: at the oldest entry kept
// by default, at the entries written from then on with NewGroupAt "$" (the
// webhook's --from now). Either way a restart resumes where the group
// stopped: what was written while no consumer ran is read.
func TestNewGroupAt(t *testing.T) {
	c, keys := opsRedis(t)
	ctx := t.Context()
	tests := []struct {
		at   string
		want []string // values handled, in order
	}{
		{"", []string{"before", "running", "stopped"}},
		{"$", []string{"running", "stopped"}},
	}
	for i, tt := range tests {
		t.Run("at "+tt.at, func(t *testing.T) {
			stream := "src" + strconv.Itoa(i)
			emit := func(v string) {
				t.Helper()
				if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.Stream(stream, 0), Fields: []string{"v", v}}); err != nil {
					t.Fatal(err)
				}
			}
			var mu sync.Mutex
			var got []string
			h := pipeline.HandlerFunc(func(_ context.Context, b *pipeline.Batch) error {
				mu.Lock()
				defer mu.Unlock()
				for _, e := range b.Entries {
					got = append(got, e.Fields["v"])
				}
				return nil
			})
			handled := func(n int) func() bool {
				return func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= n }
			}
			run := func() (stop func()) {
				r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "s", Stream: stream, Partitions: []int{0},
					Block: 50 * time.Millisecond, NewGroupAt: tt.at}, h, zerolog.Nop(), nil)
				rctx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- r.Run(rctx) }()
				pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
				return func() {
					cancel()
					if err := <-done; err != nil {
						t.Error(err)
					}
				}
			}
			emit("before")
			stop := run()
			emit("running")
			pipelinetest.Eventually(t, 10*time.Second, "running handled", handled(len(tt.want)-1))
			stop()
			emit("stopped")
			stop = run()
			pipelinetest.Eventually(t, 10*time.Second, "stopped handled", handled(len(tt.want)))
			stop()
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(got, tt.want) {
				t.Errorf("handled %q, want %q", got, tt.want)
			}
		})
	}
}

// startedRunner is a runner started on its own: what its Run returned
// (done), its log, and how to stop it.
type startedRunner struct {
	r      *pipeline.Runner
	done   chan error
	logs   *pipelinetest.Logs
	cancel context.CancelFunc
}

func startRunner(t *testing.T, c rueidis.Client, keys pipeline.Keys, opts pipeline.Options, h pipeline.Handler) *startedRunner {
	t.Helper()
	s := &startedRunner{done: make(chan error, 1), logs: &pipelinetest.Logs{}}
	s.r = pipeline.NewRunner(c, keys, opts, h, zerolog.New(s.logs).Level(zerolog.WarnLevel), nil)
	ctx, cancel := context.WithCancel(t.Context())
	s.cancel = cancel
	go func() { s.done <- s.r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if s.done != nil {
			<-s.done
		}
	})
	return s
}

// waitOutage waits until the runner says Redis is unreachable, and fails
// the test if its Run returned instead.
func (s *startedRunner) waitOutage(t *testing.T) {
	t.Helper()
	pipelinetest.Eventually(t, 30*time.Second, "the runner saying Redis is unreachable, or returning", func() bool {
		return strings.Contains(s.logs.String(), "Redis unreachable") || len(s.done) > 0
	})
	if len(s.done) > 0 {
		err := <-s.done
		s.done = nil
		t.Fatalf("Run returned %v while Redis was down at its start, want it to wait", err)
	}
}

// TestGroupsAtStartWaitOutRedis: a stage started while Redis is down waits
// for it, as a running one does, instead of exiting with the dial error: it
// says so once, is not Ready meanwhile, and once Redis is back it creates
// its groups, reads and commits. Stopped while it waits, Run returns nil.
func TestGroupsAtStartWaitOutRedis(t *testing.T) {
	redis := pipelinetest.RedisT(t, pipelinetest.RedisOptions{})
	c := client(t, redis.Addr)
	keys := testKeys()
	var handled atomic.Int64
	h := pipeline.HandlerFunc(func(_ context.Context, b *pipeline.Batch) error {
		handled.Add(int64(len(b.Entries)))
		return nil
	})
	opts := pipeline.Options{Stage: "s", Stream: "src", Consumer: "c1", Block: 50 * time.Millisecond}
	if err := redis.Kill(); err != nil {
		t.Fatal(err)
	}

	stopped := startRunner(t, c, keys, opts, h)
	stopped.waitOutage(t)
	stopped.cancel()
	if err := <-stopped.done; err != nil {
		t.Errorf("Run stopped while Redis was down returned %v, want nil", err)
	}
	stopped.done = nil

	s := startRunner(t, c, keys, opts, h)
	s.waitOutage(t)
	if s.r.Ready() {
		t.Error("Ready before its groups exist")
	}
	if err := redis.Restart(); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 30*time.Second, "the runner ready once Redis is back", s.r.Ready)
	if _, err := pipeline.Emit(t.Context(), c, pipeline.Message{Stream: keys.Stream("src", 5), Fields: []string{"n", "1"}}); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 30*time.Second, "the entry handled and acked", func() bool {
		pending, err := c.Do(t.Context(), c.B().Xpending().Key(keys.Stream("src", 5)).Group("s").Build()).ToArray()
		return handled.Load() == 1 && err == nil && len(pending) > 0 && mustInt(pending[0]) == 0
	})
	if n := strings.Count(s.logs.String(), "Redis unreachable"); n != 1 {
		t.Errorf("the outage said %d times, want once:\n%s", n, s.logs.String())
	}
	t.Logf("log:\n%s", s.logs.String())
}

// TestGroupsAtStartFailOnAnswers: an error Redis answered while the groups
// are created is no outage: Run returns it at once, naming it.
func TestGroupsAtStartFailOnAnswers(t *testing.T) {
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	if err := c.Do(t.Context(), c.B().Set().Key(keys.Stream("src", 3)).Value("not a stream").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	s := startRunner(t, c, keys, pipeline.Options{Stage: "s", Stream: "src", Consumer: "c1"}, pipeline.HandlerFunc(
		func(context.Context, *pipeline.Batch) error { return nil }))
	var err error
	select {
	case err = <-s.done:
		s.done = nil
	case <-time.After(30 * time.Second):
		t.Fatal("Run still waits 30 s after Redis answered WRONGTYPE")
	}
	if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") || !strings.Contains(err.Error(), keys.Stream("src", 3)) {
		t.Errorf("Run returned %v, want the WRONGTYPE of %s", err, keys.Stream("src", 3))
	}
}
