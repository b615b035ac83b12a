package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// A stage whose process is alive but moves nothing read "running" for as
// long as it lasted. A hung handler: its process's beats went on, and the
// runner kept the batch's entries claimed, so their idle time never grew
// either. An entry pending for a consumer that is gone, on a partition no
// running process serves: nobody ever claims it. Status now reads both
// STUCK past the runner's StuckAfter, says which process or consumer holds
// which partition's entry and what to do, and reads it no longer stuck
// once the entry moves.
func TestStatusSaysStuck(t *testing.T) {
	redis, _ := testRedis(t)
	// Long enough that the first status, right after the entry came, is
	// taken before it: at 600 ms a loaded machine (make test runs packages
	// side by side) took longer, and that status read STUCK already.
	const stuckAfter = 3 * time.Second
	tests := []struct {
		name string
		// hold makes an entry of partition 1 stuck, returning its id and
		// what lets it go.
		hold     func(t *testing.T, rdb rueidis.Client, keys pipeline.Keys, hang chan struct{}) (id string, release func())
		part     int    // the entry's partition
		says     string // the line under the table, after "DEDUPE stuck: ", with ID for the entry's id and KEY its stream
		consumer string // the --detail line of the consumer that holds it
	}{
		{
			name: "handler hangs",
			hold: func(t *testing.T, rdb rueidis.Client, keys pipeline.Keys, hang chan struct{}) (string, func()) {
				ids, err := pipeline.Emit(t.Context(), rdb, pipeline.Message{Stream: keys.Stream(pipeline.StreamDedupe, 1), Fields: []string{"n", "1"}})
				if err != nil {
					t.Fatal(err)
				}
				return ids[0], func() { close(hang) }
			},
			part:     1,
			says:     "d1 has held 1 entry of partition 1 (KEY, first ID) for ",
			consumer: `(?m)^\s+d1\s+1\s+STUCK: oldest entry held `,
		},
		{
			name: "nobody claims",
			hold: func(t *testing.T, rdb rueidis.Client, keys pipeline.Keys, hang chan struct{}) (string, func()) {
				close(hang) // d1's handler is quick: it serves partition 0 only
				key := keys.Stream(pipeline.StreamDedupe, 2)
				ids, err := pipeline.Emit(t.Context(), rdb, pipeline.Message{Stream: key, Fields: []string{"n", "1"}})
				if err != nil {
					t.Fatal(err)
				}
				// A consumer that read it and is gone: no beats, no keep.
				if err := rdb.Do(t.Context(), rdb.B().Xreadgroup().Group("dedupe", "ghost").Count(1).Streams().Key(key).Id(">").Build()).Error(); err != nil {
					t.Fatal(err)
				}
				return ids[0], func() {
					if err := rdb.Do(t.Context(), rdb.B().Xack().Key(key).Group("dedupe").Id(ids[0]).Build()).Error(); err != nil {
						t.Fatal(err)
					}
				}
			},
			part:     2,
			says:     "entry ID of partition 2 (KEY) has been pending for ghost ",
			consumer: `(?m)^\s+ghost\s+1\s+STUCK: entry pending .*, unclaimed`,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Side by side: most of each case is the wait for StuckAfter,
			// and each has keys of its own.
			t.Parallel()
			keys := pipeline.NewKeys("sstuck"+strings.Repeat("x", i), 4)
			rdb, err := pipeline.NewRedis(redis.Addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(rdb.Close)
			// The group on every partition, as a fleet serving them all
			// would have made it; d1 serves 0 and 1.
			for _, k := range keys.Streams(pipeline.StreamDedupe) {
				if err := rdb.Do(t.Context(), rdb.B().XgroupCreate().Key(k).Group("dedupe").Id("0").Mkstream().Build()).Error(); err != nil {
					t.Fatal(err)
				}
			}
			hang := make(chan struct{})
			h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
				select {
				case <-hang:
				case <-ctx.Done():
				}
				return nil
			})
			r := pipeline.NewRunner(rdb, keys, pipeline.Options{Stage: "dedupe", Stream: pipeline.StreamDedupe, Consumer: "d1",
				Partitions: []int{0, 1}, Block: 100 * time.Millisecond, AliveEvery: 100 * time.Millisecond, StuckAfter: stuckAfter,
				ShutdownTimeout: 100 * time.Millisecond}, h, zerolog.Nop(), nil)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })
			pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
			// One parser for every status: kong.New took 0.3-0.7 s under
			// -race, the first status's included, late for StuckAfter.
			command, _ := parser(t)
			status := func(args ...string) string {
				c := command(append([]string{"status"}, args...)...).(*StatusCmd)
				rep, err := c.collect(t.Context(), rdb, keys, campaignSource{rdb: rdb, keys: keys})
				if err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				c.print(&out, rep, false)
				return out.String()
			}
			row := func(out string) string { return regexp.MustCompile(`(?m)^dedupe .*$`).FindString(out) }

			held := time.Now()
			id, release := tt.hold(t, rdb, keys, hang)
			// Held, but not yet past StuckAfter: working, as any batch
			// (unless this status came too late to tell).
			if got := row(status()); !strings.Contains(got, "running (1)") && time.Since(held) < stuckAfter {
				t.Errorf("dedupe's row right after the entry came: %q, want running (1)", got)
			}
			var out string
			pipelinetest.Eventually(t, 10*time.Second, "dedupe read stuck", func() bool {
				out = status()
				return strings.Contains(row(out), "STUCK: oldest entry held ")
			})
			if strings.Contains(out, "MOST IDLE") {
				t.Errorf("status still shows the MOST IDLE column:\n%s", out)
			}
			says := "DEDUPE stuck: " + strings.NewReplacer("ID", id, "KEY", keys.Stream(pipeline.StreamDedupe, tt.part)).Replace(tt.says)
			if !strings.Contains(out, says) || !strings.Contains(out, "restart it") {
				t.Errorf("status does not say who holds what and what to do (%q):\n%s", says, out)
			}
			if detail := status("--detail"); !regexp.MustCompile(tt.consumer).MatchString(detail) {
				t.Errorf("--detail does not show the consumer holding the entry (%s):\n%s", tt.consumer, detail)
			}

			release()
			pipelinetest.Eventually(t, 10*time.Second, "dedupe no longer stuck", func() bool {
				out = status()
				return strings.Contains(row(out), "idle (1)")
			})
			if strings.Contains(strings.ToLower(out), "stuck") {
				t.Errorf("released, status still says stuck:\n%s", out)
			}
		})
	}
}
