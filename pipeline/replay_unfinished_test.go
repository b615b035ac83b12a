package pipeline_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// A replay leaves to the stage the entries its group has not finished:
// a copy of an entry still pending (held by a live consumer, or by a dead one
// until it is claimed) or not read yet was handled beside its original, both
// read the marks before either wrote them, and both sent. Every partition of
// the window holds ten entries: the group read seven, acked 0, 2 and 4, and
// holds 1, 3, 5 and 6 pending under two consumers; 7, 8 and 9 are unread.
// Only 0, 2 and 4 are re-injected, the seven others counted; a stream with no
// group (its stage never ran), or results without --group, replays all ten.
// On one Redis and on the 3-master cluster (16 partitions span the masters).
func TestReplayLeavesUnfinishedEntriesToTheStage(t *testing.T) {
	finished, all := []int{0, 2, 4}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	tests := []struct {
		name    string
		opts    pipeline.ReplayOptions
		groups  []string // created on the stream; the first read and acked as above
		want    []int    // entries re-injected, per partition
		dryRun  bool
		written string // stream the copies go to, default opts.Stream
	}{
		{name: "deliver", opts: pipeline.ReplayOptions{Stream: pipeline.StreamDeliver}, groups: []string{"deliver"}, want: finished},
		{name: "dry run", opts: pipeline.ReplayOptions{Stream: pipeline.StreamDeliver, DryRun: true}, groups: []string{"deliver"}, want: finished, dryRun: true},
		{name: "forced", opts: pipeline.ReplayOptions{Stream: pipeline.StreamDedupe, Force: true}, groups: []string{"dedupe"}, want: finished},
		{name: "express lane", opts: pipeline.ReplayOptions{Stream: pipeline.StreamDeliverExpress}, groups: []string{"deliver"}, want: finished},
		// deliver's group holds them: deliver sends them, and a copy through
		// dedupe would reach deliver beside them.
		{name: "into dedupe", opts: pipeline.ReplayOptions{Stream: pipeline.StreamDeliver, Into: pipeline.StreamDedupe},
			groups: []string{"deliver"}, want: finished, written: pipeline.StreamDedupe},
		{name: "one webhook receiver", opts: pipeline.ReplayOptions{Stream: pipeline.StreamResults, Group: "b"}, groups: []string{"b", "a"}, want: finished},
		{name: "every webhook receiver", opts: pipeline.ReplayOptions{Stream: pipeline.StreamResults}, groups: []string{"b", "a"}, want: all},
		{name: "no group", opts: pipeline.ReplayOptions{Stream: pipeline.StreamDeliver}, want: all},
		{name: "another stage's group only", opts: pipeline.ReplayOptions{Stream: pipeline.StreamDeliver}, groups: []string{"dedupe"}, want: all},
	}
	for _, srv := range []struct {
		name  string
		addrs []string
	}{{"standalone", []string{env.Redis.Addr}}, {"cluster", env.Cluster.Addrs}} {
		c := client(t, srv.addrs...)
		for _, tt := range tests {
			t.Run(srv.name+"/"+tt.name, func(t *testing.T) {
				ctx := t.Context()
				keys := testKeys()
				for p := range keys.Partitions {
					windowWithAGroup(t, c, keys.Stream(tt.opts.Stream, p), p, tt.groups)
				}
				opts := tt.opts
				opts.PageSize = 2 // pages split the pending entries, and XPENDING pages too
				res, err := pipeline.Replay(ctx, c, keys, opts)
				if err != nil {
					t.Fatal(err)
				}
				n := int64(keys.Partitions)
				if res.Scanned != 10*n || res.Injected != int64(len(tt.want))*n || res.Unfinished != int64(10-len(tt.want))*n {
					t.Errorf("scanned %d, injected %d, left to the stage %d; want %d, %d, %d",
						res.Scanned, res.Injected, res.Unfinished, 10*n, int64(len(tt.want))*n, int64(10-len(tt.want))*n)
				}
				into := tt.written
				if into == "" {
					into = tt.opts.Stream
				}
				for p := range keys.Partitions {
					if res.ByPart[p] != int64(len(tt.want)) || res.UnfinishedByPart[p] != int64(10-len(tt.want)) {
						t.Errorf("partition %d: injected %d, left %d; want %d, %d", p, res.ByPart[p], res.UnfinishedByPart[p], len(tt.want), 10-len(tt.want))
					}
					var want []string
					for _, i := range tt.want {
						if !tt.dryRun {
							want = append(want, fmt.Sprintf("%d/%d", p, i))
						}
					}
					after := "1009-0"
					if into != tt.opts.Stream {
						after = "0-0"
					}
					if got := injected(t, c, keys.Stream(into, p), after); !slices.Equal(got, want) {
						t.Errorf("partition %d: %s got %v, want %v", p, into, got, want)
					}
				}
			})
		}
	}
}

// windowWithAGroup writes entries 1000-0..1009-0 (n = "p/i") to stream and
// creates groups on it. The first, if any, reads seven of them, under two
// consumers (one of them as good as dead: it never acks), and acks 0, 2, 4.
func windowWithAGroup(t *testing.T, c rueidis.Client, stream string, p int, groups []string) {
	t.Helper()
	ctx := context.Background()
	for i := range 10 {
		opsAdd(t, c, stream, fmt.Sprintf("%d-0", 1000+i), pipeline.FieldCampaign, "c", "n", fmt.Sprintf("%d/%d", p, i))
	}
	for _, g := range groups {
		if err := pipeline.CreateGroup(ctx, c, stream, g); err != nil {
			t.Fatal(err)
		}
	}
	if len(groups) == 0 {
		return
	}
	g := groups[0]
	for _, read := range []struct {
		consumer string
		n        int64
	}{{"alive", 4}, {"dead", 3}} {
		cmd := c.B().Xreadgroup().Group(g, read.consumer).Count(read.n).Streams().Key(stream).Id(">").Build()
		if err := c.Do(ctx, cmd).Error(); err != nil {
			t.Fatalf("xreadgroup %s: %v", stream, err)
		}
	}
	if err := c.Do(ctx, c.B().Xack().Key(stream).Group(g).Id("1000-0", "1002-0", "1004-0").Build()).Error(); err != nil {
		t.Fatalf("xack %s: %v", stream, err)
	}
}
