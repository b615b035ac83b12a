package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// While a Redis Cluster master is down, the operator's commands that act
// answer within a bound and say why, as status does: campaigns cancel
// waited 30 s to say "context deadline exceeded", with no word of whether
// the campaign was stopped, and dlq list, show, retry and drop, and the
// start of results tail, hung for the whole outage. A cancel says where it
// got to (PostgreSQL is up) and that running it again is safe.
func TestCommandsDuringMasterOutage(t *testing.T) {
	cluster, rdb, db, keys := outageSetup(t)
	tools := campaignTools{rdb: rdb, db: db}
	for _, id := range []string{"outage", "canceled-before"} {
		// Splitting: their progress is the partitions' counters, on every master.
		if _, _, err := campaign.Create(t.Context(), rdb, db, keys, campaign.Campaign{ID: id, App: "a", Channels: []string{"x"},
			Title: "t", TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := campaign.Cancel(t.Context(), rdb, db, keys, "canceled-before"); err != nil {
		t.Fatal(err)
	}
	letter, err := rdb.Do(t.Context(), rdb.B().Xadd().Key(keys.DLQ()).Id("*").FieldValue().
		FieldValue("error", "no credentials").Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	// The master of the DLQ's slot: every partition's too, on some.
	slot, err := rdb.Do(t.Context(), rdb.B().ClusterKeyslot().Key(keys.DLQ()).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	owner := pipelinetest.SlotOwner(t, rdb, slot)
	for i, addr := range cluster.Addrs {
		if addr == owner {
			if err := cluster.Nodes[i].Kill(); err != nil {
				t.Fatal(err)
			}
		}
	}
	q := pipeline.NewDLQ(rdb, keys)
	drop := func(q *pipeline.DLQ, ctx context.Context, f pipeline.DLQFilter) (pipeline.DLQResult, error) {
		return q.Drop(ctx, f)
	}
	retry := func(q *pipeline.DLQ, ctx context.Context, f pipeline.DLQFilter) (pipeline.DLQResult, error) {
		return q.Retry(ctx, f)
	}
	list, tail := parse(t, "dlq", "list"), parse(t, "results", "tail", "--from", "0")
	tests := []struct {
		name string
		run  func(context.Context) error
		want []string // in what it said, beside that nothing answered
	}{
		{"cancel", func(ctx context.Context) error {
			_, _, err := cancelCampaign(ctx, tools, keys, "outage")
			return err
		}, []string{"campaign outage is not canceled (PostgreSQL still has it splitting", "safe to repeat"}},
		{"cancel again", func(ctx context.Context) error {
			_, _, err := cancelCampaign(ctx, tools, keys, "canceled-before")
			return err
		}, []string{"campaign canceled-before is canceled (PostgreSQL recorded it", "running the cancel again is safe"}},
		{"dlq list", func(ctx context.Context) error {
			return list.DLQ.List.run(ctx, q, &strings.Builder{})
		}, nil},
		{"dlq show", func(ctx context.Context) error {
			_, err := within(ctx, refreshTimeout, func(ctx context.Context) (pipeline.DeadLetter, error) { return q.Show(ctx, letter) })
			return err
		}, nil},
		{"dlq retry", func(ctx context.Context) error {
			return applyTo(ctx, q, pipeline.DLQFilter{IDs: []string{letter}}, "retried", retry, &strings.Builder{}, &strings.Builder{})
		}, nil},
		{"dlq drop --all", func(ctx context.Context) error {
			return applyTo(ctx, q, pipeline.DLQFilter{}, "dropped", drop, &strings.Builder{}, &strings.Builder{})
		}, nil},
		{"results tail --from 0", func(ctx context.Context) error {
			return tail.Results.Tail.tail(ctx, rdb, keys, &strings.Builder{}, &strings.Builder{}, zerolog.Nop())
		}, nil},
	}
	// All at once: each waits its bound out on the one dead master, and
	// none can change what another reads while it is down (the cancels
	// are of campaigns of their own). One after another they were 35 s of
	// the package's time; as parallel subtests, still two at a time
	// (-parallel is GOMAXPROCS, 2 in CI).
	type ran struct {
		err  error
		took time.Duration
	}
	got := make([]ran, len(tests))
	var wg sync.WaitGroup
	for i, tt := range tests {
		wg.Go(func() {
			// Longer than the test would wait: the old code ran into it,
			// or hung until it.
			ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
			defer cancel()
			start := time.Now()
			err := tt.run(ctx)
			got[i] = ran{err, time.Since(start)}
		})
	}
	wg.Wait()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := got[i].err
			if took := got[i].took; took > dlqApplyTimeout+15*time.Second {
				t.Errorf("took %s to say a master is down", took.Round(time.Second))
			}
			if err == nil {
				t.Fatal("succeeded with a master down")
			}
			for _, w := range append(tt.want, "no answer within") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("said %q, want %q in it", err, w)
				}
			}
		})
	}
}
