package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// A stage whose process is alive but whose handler hangs read "running"
// for as long as it hung: its beats went on, and the runner kept the
// batch's entries claimed, so their idle time never grew either. Status
// now reads it STUCK once the handler has held one batch past the
// runner's StuckAfter, says which process holds which partition's
// entries, and reads it no longer stuck once the handler lets go.
func TestStatusSaysStuck(t *testing.T) {
	redis, _ := testRedis(t)
	keys := pipeline.NewKeys("sstuck", 4)
	rdb, err := pipeline.NewRedis(redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	release := make(chan struct{})
	h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	const stuckAfter = 600 * time.Millisecond
	r := pipeline.NewRunner(rdb, keys, pipeline.Options{Stage: "dedupe", Stream: pipeline.StreamDedupe, Consumer: "d1",
		Block: 100 * time.Millisecond, AliveEvery: 100 * time.Millisecond, StuckAfter: stuckAfter,
		ShutdownTimeout: 100 * time.Millisecond}, h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
	ids, err := pipeline.Emit(t.Context(), rdb, pipeline.Message{Stream: keys.Stream(pipeline.StreamDedupe, 2), Fields: []string{"n", "1"}})
	if err != nil {
		t.Fatal(err)
	}
	status := func(args ...string) string {
		cli := parse(t, append([]string{"status"}, args...)...)
		rep, err := cli.Status.collect(t.Context(), rdb, keys, campaignSource{rdb: rdb, keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cli.Status.print(&out, rep, false)
		return out.String()
	}
	row := func(out string) string { return regexp.MustCompile(`(?m)^dedupe .*$`).FindString(out) }

	// Held, but not yet past StuckAfter: working, as any batch.
	pipelinetest.Eventually(t, 10*time.Second, "the entry in hand", func() bool {
		return strings.Contains(row(status()), "running (1)")
	})
	var out string
	pipelinetest.Eventually(t, 10*time.Second, "dedupe read stuck", func() bool {
		out = status()
		return strings.Contains(row(out), "STUCK: oldest entry held ")
	})
	if strings.Contains(out, "MOST IDLE") {
		t.Errorf("status still shows the MOST IDLE column:\n%s", out)
	}
	says := "DEDUPE stuck: d1 has held 1 entry of partition 2 (" + keys.Stream(pipeline.StreamDedupe, 2) + ", first " + ids[0] + ") for "
	if !strings.Contains(out, says) || !strings.Contains(out, "Check that process's logs and restart it: once it is gone, another consumer claims the entries after --claim-idle.") {
		t.Errorf("status does not say who holds what and what to do (%q):\n%s", says, out)
	}
	if detail := status("--detail"); !regexp.MustCompile(`(?m)^\s+d1\s+1\s+STUCK: oldest entry held `).MatchString(detail) {
		t.Errorf("--detail does not show d1 stuck on its partition:\n%s", detail)
	}

	close(release)
	pipelinetest.Eventually(t, 10*time.Second, "dedupe no longer stuck", func() bool {
		out = status()
		return strings.Contains(row(out), "idle (1)")
	})
	if strings.Contains(out, "STUCK") || strings.Contains(out, "stuck") {
		t.Errorf("released, status still says stuck:\n%s", out)
	}
}
