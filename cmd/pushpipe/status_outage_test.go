package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// While a Redis Cluster master is down, `pushpipe status` says so within
// seconds, once or at every --watch refresh. The client retries a read of
// the dead node's slots until the node answers, so status hung for the whole
// outage and a --watch froze without a line, when the operator needed it
// most.
func TestStatusDuringMasterOutage(t *testing.T) {
	cluster := pipelinetest.ClusterT(t)
	rdb, err := pipeline.NewRedis(strings.Join(cluster.Addrs, ","))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	keys := pipeline.NewKeys("pp", 16)
	if _, err := pipeline.Status(t.Context(), rdb, keys, pipeline.StageStreams()...); err != nil {
		t.Fatalf("status before the outage: %v", err)
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli := parse(t, tt.args...)
			// Longer than the outage would last in the test: the old
			// code ran into it.
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			var out lockedBuffer
			start := time.Now()
			done := make(chan error, 1)
			go func() { done <- cli.Status.refresh(ctx, rdb, keys, campaignSource{rdb: rdb, keys: keys}, &out, false) }()
			var got string
			if cli.Status.Watch {
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
			} else {
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
