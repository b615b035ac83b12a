package pipeline_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

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
