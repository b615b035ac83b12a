package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// While a Redis Cluster master is down, the operator's reads say so within
// seconds: status once or at every --watch refresh, send --wait at every
// refresh, campaigns list. The client retries a read of the dead node's
// slots until the node answers, so status hung for the whole outage, a
// --watch and send --wait froze without the failure lines they promise, and
// campaigns list waited 30 s to say "context deadline exceeded", when the
// operator needed them most.
func TestStatusDuringMasterOutage(t *testing.T) {
	cluster, rdb, db, keys := outageSetup(t)
	// Splitting: its progress is the partitions' counters, on every master.
	c, _, err := campaign.Create(t.Context(), rdb, db, keys, campaign.Campaign{ID: "outage", App: "a", Channels: []string{"x"},
		Title: "t", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	src := campaignSource{rdb: rdb, keys: keys, db: db}
	if _, err := src.Progress(t.Context(), c.ID); err != nil {
		t.Fatalf("progress before the outage: %v", err)
	}
	if err := cluster.Nodes[1].Kill(); err != nil {
		t.Fatal(err)
	}

	// status runs `pushpipe status ARGS...` until its first failure, and
	// returns what it said.
	status := func(args ...string) func(context.Context) (string, error) {
		cli := parse(t, append([]string{"status"}, args...)...)
		return func(ctx context.Context) (string, error) {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			var out lockedBuffer
			done := make(chan error, 1)
			go func() { done <- cli.Status.refresh(ctx, rdb, keys, campaignSource{rdb: rdb, keys: keys}, &out, false) }()
			if !cli.Status.Watch {
				if err := <-done; err != nil {
					return err.Error(), nil
				}
				return "", errors.New("status with a master down succeeded")
			}
			if !waitFor(25*time.Second, func() bool { return strings.Contains(out.String(), "\n") }) {
				return "", errors.New("no line in 25s")
			}
			cancel()
			if err := <-done; err != nil {
				return "", fmt.Errorf("the watch ended with %w", err)
			}
			line, _, _ := strings.Cut(out.String(), "\n")
			var v struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal([]byte(line), &v); err != nil || v.Error == "" {
				return "", fmt.Errorf("first line is not a failed refresh: %q (%v)", line, err)
			}
			return v.Error, nil
		}
	}
	tests := []struct {
		name string
		said func(context.Context) (string, error) // what the command said of the outage
	}{
		{"status", status()},
		{"status --watch", status("--watch", "--json", "--interval", "100ms")},
		{"send --wait", func(ctx context.Context) (string, error) {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			var out lockedBuffer
			done := make(chan error, 1)
			go func() { done <- follow(ctx, src, c.ID, &out, false, 100*time.Millisecond, bySend) }()
			if !waitFor(25*time.Second, func() bool { return strings.Contains(out.String(), "progress unavailable") }) {
				return "", fmt.Errorf("no failure line in 25s:\n%s", out.String())
			}
			cancel()
			if err := <-done; err != nil {
				return "", fmt.Errorf("the following ended with %w", err)
			}
			return out.String(), nil
		}},
		{"campaigns list", func(ctx context.Context) (string, error) {
			_, _, err := listPage(ctx, campaignTools{rdb: rdb, db: db}, keys, campaign.ListQuery{Limit: campaign.DefaultListLimit})
			if err == nil {
				return "", errors.New("campaigns list with a master down succeeded")
			}
			return err.Error(), nil
		}},
	}
	// All at once, as TestCommandsDuringMasterOutage: each only reads, and
	// waits its bound out on the one dead master.
	type ran struct {
		said string
		err  error
		took time.Duration
	}
	got := make([]ran, len(tests))
	var wg sync.WaitGroup
	for i, tt := range tests {
		wg.Go(func() {
			// Longer than the test would wait: the old code ran into it.
			ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
			defer cancel()
			start := time.Now()
			said, err := tt.said(ctx)
			got[i] = ran{said, err, time.Since(start)}
		})
	}
	wg.Wait()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got[i].err != nil {
				t.Fatal(got[i].err)
			}
			// "no answer within" is the command's own bound firing
			// (refreshTimeout, within.go), on its clock: that is the check.
			// The time is a hang guard under the 30 s the old list took
			// and the 40 s context, which a loaded box may stretch 5 s to.
			if took := got[i].took; took > 25*time.Second {
				t.Errorf("took %s to say a master is down", took.Round(time.Second))
			}
			if !strings.Contains(got[i].said, "no answer within") {
				t.Errorf("said %q, not that nothing answered", got[i].said)
			}
		})
	}
}

// waitFor polls cond for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// outageSetup is what a test of a master outage starts from: a 3-master
// cluster, a client of it, a database and the keys of 16 partitions.
func outageSetup(t *testing.T) (*pipelinetest.Cluster, rueidis.Client, *pgxpool.Pool, pipeline.Keys) {
	t.Helper()
	cluster := pipelinetest.ClusterT(t)
	rdb, err := pipeline.NewRedis(strings.Join(cluster.Addrs, ","))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	_, db := testDatabase(t)
	return cluster, rdb, db, pipeline.NewKeys("pp", 16)
}
