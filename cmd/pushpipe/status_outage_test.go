package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// While a Redis Cluster master is down, `pushpipe status` and `send --wait`
// say so within seconds: status once or at every --watch refresh, send
// --wait at every refresh. The client retries a read of the dead node's
// slots until the node answers, so status hung for the whole outage, and a
// --watch and send --wait froze without the failure lines they promise, when
// the operator needed them most.
func TestStatusDuringMasterOutage(t *testing.T) {
	cluster := pipelinetest.ClusterT(t)
	rdb, err := pipeline.NewRedis(strings.Join(cluster.Addrs, ","))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	_, db := testDatabase(t)
	keys := pipeline.NewKeys("pp", 16)
	c, _, err := campaign.Create(t.Context(), rdb, db, keys, campaign.Campaign{ID: "outage", App: "a", Channels: []string{"x"},
		Title: "t", TTL: time.Hour}) // splitting: its progress is the partitions' counters, on every master

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
	tests := []struct {
		name string
		args []string
	}{
		{"once", []string{"status"}},
		{"watch", []string{"status", "--watch", "--json", "--interval", "100ms"}},
		{"send --wait", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cli *CLI
			if tt.args != nil {
				cli = parse(t, tt.args...)
			}
			// Longer than the outage would last in the test: the old
			// code ran into it.
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			var out lockedBuffer
			start := time.Now()
			done := make(chan error, 1)
			go func() {
				if cli == nil {
					done <- follow(ctx, src, c.ID, &out, false, 100*time.Millisecond)
					return
				}
				done <- cli.Status.refresh(ctx, rdb, keys, campaignSource{rdb: rdb, keys: keys}, &out, false)
			}()
			var got string
			switch {
			case cli == nil:
				if !waitFor(15*time.Second, func() bool { return strings.Contains(out.String(), "progress unavailable") }) {
					t.Fatalf("no failure line in 15s:\n%s", out.String())
				}
				got = out.String()
				cancel()
				if err := <-done; err != nil {
					t.Fatalf("the following ended with %v", err)
				}
			case cli.Status.Watch:
				pipelinetest.Eventually(t, 15*time.Second, "a refresh's failure line", func() bool { return strings.Contains(out.String(), "\n") })
				line, _, _ := strings.Cut(out.String(), "\n")
				var v struct {
					Error string `json:"error"`
				}
				if err := json.Unmarshal([]byte(line), &v); err != nil || v.Error == "" {
					t.Fatalf("first line is not a failed refresh: %q (%v)", line, err)
				}
				got = v.Error
				cancel()
				if err := <-done; err != nil {
					t.Fatalf("the watch ended with %v", err)
				}
			default:
				err := <-done
				if err == nil {
					t.Fatal("status with a master down succeeded")
				}
				got = err.Error()
			}
			if took := time.Since(start); took > 15*time.Second {
				t.Errorf("status took %s to say a master is down", took.Round(time.Second))
			}
			if !strings.Contains(got, "no answer within") {
				t.Errorf("status said %q, not that nothing answered", got)
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
