package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// `pushpipe status` says whether each stage runs, from the processes'
// liveness beats: idle when its process waits on a quiet stream, running
// while it has work, and "not running" with when it was last seen once its
// process stopped cleanly (at once) or stopped beating (lost its Redis,
// was killed or hung). Before, every case showed the same row of figures,
// and a blocked idle consumer's MOST IDLE grew as a dead one's.
func TestStatusSaysWhetherStagesRun(t *testing.T) {
	redis, _ := testRedis(t)
	tests := []struct {
		name string
		stop string // how the process ends: "", "clean", "lost" (its Redis client closed: no more beats, no goodbye)
		work bool   // an entry held by the handler
		row  string // in dedupe's STATE cell
		says string // the line under the table, "" for none
		// ago is the rest of that line after a time ago: how long ago a
		// stop was read rounds to 0 s or 1 s on a loaded machine.
		ago string
	}{
		{"idle", "", false, "idle (1)", "", ""},
		{"working", "", true, "running (1)", "", ""},
		{"stopped cleanly", "clean", false, "STOPPED ", "DEDUPE not running: stopped cleanly ", "s ago (d1). Start `pushpipe dedupe` if it should run."},
		{"stopped beating", "lost", true, "NOT RUNNING, last seen", "DEDUPE not running: last seen ", ""},
	}
	// One parser for every status: kong.New took 0.3-0.7 s under -race,
	// of a read after a stop that must say it was a moment ago.
	command, _ := parser(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := pipeline.NewKeys("s"+strings.ReplaceAll(tt.name, " ", ""), 4)
			rdb, err := pipeline.NewRedis(redis.Addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(rdb.Close)
			release := make(chan struct{})
			defer close(release)
			h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
				select {
				case <-release:
				case <-ctx.Done():
				}
				return nil
			})
			r := pipeline.NewRunner(rdb, keys, pipeline.Options{Stage: "dedupe", Stream: pipeline.StreamDedupe, Consumer: "d1",
				Block: 100 * time.Millisecond, AliveEvery: 200 * time.Millisecond, ShutdownTimeout: 100 * time.Millisecond}, h, zerolog.Nop(), nil)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			defer func() { cancel(); <-done }()
			pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
			if tt.work {
				if _, err := pipeline.Emit(t.Context(), rdb, pipeline.Message{Stream: keys.Stream(pipeline.StreamDedupe, 0), Fields: []string{"n", "1"}}); err != nil {
					t.Fatal(err)
				}
			}
			// A reader of its own: the "lost" process's client is closed.
			reader, err := pipeline.NewRedis(redis.Addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(reader.Close)
			status := func() (string, statusReport) {
				c := command("status").(*StatusCmd)
				rep, err := c.collect(t.Context(), reader, keys, campaignSource{rdb: reader, keys: keys})
				if err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				c.print(&out, rep, false)
				return out.String(), rep
			}
			if tt.work {
				pipelinetest.Eventually(t, 10*time.Second, "the entry pending", func() bool {
					out, _ := status()
					return strings.Contains(out, "running (1)")
				})
			}
			var stopped time.Time
			switch tt.stop {
			case "clean":
				cancel()
				<-done
				done <- nil
				stopped = time.Now()
			case "lost":
				rdb.Close()
				time.Sleep(800 * time.Millisecond) // more than three beats
			default:
				time.Sleep(800 * time.Millisecond) // idle longer than the stale window: still idle
			}
			out, rep := status()
			row := regexp.MustCompile(`(?m)^dedupe .*$`).FindString(out)
			if !strings.Contains(row, tt.row) {
				t.Errorf("dedupe's row %q does not say %q:\n%s", row, tt.row, out)
			}
			if tt.says == "" && strings.Contains(out, "not running") {
				t.Errorf("a running stage said not running:\n%s", out)
			}
			if !strings.Contains(out, tt.says) || !strings.Contains(out, tt.ago) {
				t.Errorf("status does not say %q ... %q:\n%s", tt.says, tt.ago, out)
			}
			if tt.ago != "" {
				// As long ago as status was read after the stop, rounded
				// up: 0 s or 1 s, more on a loaded machine (3 s seen).
				most := int(time.Since(stopped)/time.Second) + 1
				ago := most + 1
				if m := regexp.MustCompile(`STOPPED (\d+)s ago`).FindStringSubmatch(row); m != nil {
					ago, _ = strconv.Atoi(m[1])
				}
				if ago > most {
					t.Errorf("dedupe's row %q does not say it stopped a moment ago (at most %d s)", row, most)
				}
			}
			if tt.stop == "lost" && !strings.Contains(out, "stopped reporting: killed, crashed or hung; 1 entry waits for it. Check its logs and restart `pushpipe dedupe`.") {
				t.Errorf("a stage that stopped beating with work waiting is not said to be killed or hung, with its work:\n%s", out)
			}
			// --json: the old keys are all there, the new ones beside them.
			b, err := json.Marshal(rep)
			if err != nil {
				t.Fatal(err)
			}
			var v struct {
				Streams []struct {
					Name   string                       `json:"name"`
					Groups []map[string]json.RawMessage `json:"groups"`
				} `json:"streams"`
			}
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			for _, s := range v.Streams {
				if s.Name != pipeline.StreamDedupe {
					continue
				}
				for _, k := range []string{"name", "lag", "lag_unknown", "pending", "consumers", "max_idle_ns", "state", "running", "processes"} {
					if _, ok := s.Groups[0][k]; !ok {
						t.Errorf("--json group has no %q: %s", k, b)
					}
				}
			}
		})
	}
}
