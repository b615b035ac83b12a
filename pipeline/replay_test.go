package pipeline_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// The operator tools' tests start their own Redis (one per top-level test):
// they depend on nothing but pipelinetest.

func opsRedis(t *testing.T) (rueidis.Client, pipeline.Keys) {
	t.Helper()
	r := pipelinetest.RedisT(t, pipelinetest.RedisOptions{})
	c, err := pipeline.NewRedis(r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, opsKeys()
}

func opsKeys() pipeline.Keys {
	return pipeline.NewKeys("t"+strconv.FormatUint(rand.Uint64(), 36), 4)
}

// opsAdd XADDs an entry with an explicit id, so time bounds are exact.
func opsAdd(t *testing.T, c rueidis.Client, key, id string, fv ...string) {
	t.Helper()
	cmd := c.B().Xadd().Key(key).Id(id).FieldValue()
	for i := 0; i < len(fv); i += 2 {
		cmd = cmd.FieldValue(fv[i], fv[i+1])
	}
	if err := c.Do(context.Background(), cmd.Build()).Error(); err != nil {
		t.Fatalf("xadd %s %s: %v", key, id, err)
	}
}

func opsRange(t *testing.T, c rueidis.Client, key, from string) []rueidis.XRangeEntry {
	t.Helper()
	xs, err := c.Do(context.Background(), c.B().Xrange().Key(key).Start(from).End("+").Build()).AsXRange()
	if err != nil {
		t.Fatal(err)
	}
	return xs
}

// injected returns the "n" field of the entries of key written after id.
func injected(t *testing.T, c rueidis.Client, key, after string) []string {
	t.Helper()
	var ns []string
	for _, x := range opsRange(t, c, key, "("+after) {
		ns = append(ns, x.FieldValues["n"])
	}
	return ns
}

func TestReplayWindowIsInclusiveAndExact(t *testing.T) {
	c, keys := opsRedis(t)
	ctx := t.Context()
	// Partition p holds ids 1000-0, 1000-1, 1001-0, 1001-1, 1002-0, 1003-0, n = "p/id".
	ids := []string{"1000-0", "1000-1", "1001-0", "1001-1", "1002-0", "1003-0"}
	for p := range keys.Partitions {
		for _, id := range ids {
			opsAdd(t, c, keys.Stream(pipeline.StreamDeliver, p), id, pipeline.FieldCampaign, "c1", "n", fmt.Sprintf("%d/%s", p, id))
		}
	}
	bound := func(s string) pipeline.Bound {
		b, err := pipeline.ParseBound(s, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name     string
		from, to string
		want     []string
	}{
		// First: later cases re-inject entries an open end would include.
		{"open end", "1002-0", "", []string{"1002-0", "1003-0"}},
		{"ids inclusive", "1000-1", "1001-1", []string{"1000-1", "1001-0", "1001-1"}},
		{"ms covers the whole millisecond", "1001", "1002", []string{"1001-0", "1001-1", "1002-0"}},
		{"time bounds", "1970-01-01T00:00:01.001Z", "1970-01-01T00:00:01.001Z", []string{"1001-0", "1001-1"}},
		{"open start", "", "1000-1", []string{"1000-0", "1000-1"}},
		{"single id", "1001-1", "1001-1", []string{"1001-1"}},
		{"nothing in window", "1001-2", "1001-9", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			last := map[int]string{}
			for p := range keys.Partitions {
				xs := opsRange(t, c, keys.Stream(pipeline.StreamDeliver, p), "-")
				last[p] = xs[len(xs)-1].ID
			}
			res, err := pipeline.Replay(ctx, c, keys, pipeline.ReplayOptions{
				Stream: pipeline.StreamDeliver, From: bound(tt.from), To: bound(tt.to), PageSize: 2,
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := int64(len(tt.want) * keys.Partitions); res.Injected != want || res.Scanned != want {
				t.Errorf("scanned %d, injected %d; want %d each", res.Scanned, res.Injected, want)
			}
			for p := range keys.Partitions {
				var want []string
				for _, id := range tt.want {
					want = append(want, fmt.Sprintf("%d/%s", p, id))
				}
				if got := injected(t, c, keys.Stream(pipeline.StreamDeliver, p), last[p]); !slices.Equal(got, want) {
					t.Errorf("partition %d re-injected %v, want %v", p, got, want)
				}
			}
		})
	}
}

func TestReplayCampaignFilterAndForce(t *testing.T) {
	c, keys := opsRedis(t)
	ctx := t.Context()
	want := map[int][]string{}
	for i := range 40 {
		p, camp := i%keys.Partitions, "a"
		if i%3 == 0 {
			camp = "b"
		}
		n := strconv.Itoa(i)
		fields := []string{pipeline.FieldCampaign, camp, "n", n, pipeline.FieldUsers, pipeline.EncodeIDs([]int64{int64(i)})}
		if i%5 == 0 {
			fields = append(fields, pipeline.FieldForce, "1") // itself a forced replay earlier
		}
		if i%5 == 1 { // a forced round's retry
			fields = append(fields, pipeline.FieldForceDevices, pipeline.EncodeIDs([]int64{int64(100 + i)}))
		}
		opsAdd(t, c, keys.Stream(pipeline.StreamDedupe, p), fmt.Sprintf("%d-0", 5000+i), fields...)
		if camp == "a" {
			want[p] = append(want[p], n)
		}
	}
	check := func(t *testing.T, after string, force bool) {
		t.Helper()
		for p := range keys.Partitions {
			xs := opsRange(t, c, keys.Stream(pipeline.StreamDedupe, p), "("+after)
			var got []string
			for _, x := range xs {
				got = append(got, x.FieldValues["n"])
				i, _ := strconv.Atoi(x.FieldValues["n"])
				if x.FieldValues[pipeline.FieldCampaign] != "a" {
					t.Errorf("replayed an entry of campaign %q", x.FieldValues[pipeline.FieldCampaign])
				}
				if ids, err := pipeline.DecodeIDs(x.FieldValues[pipeline.FieldUsers]); err != nil || !slices.Equal(ids, []int64{int64(i)}) {
					t.Errorf("entry %d: users field changed: %v %v", i, ids, err)
				}
				if f, ok := x.FieldValues[pipeline.FieldForce]; ok != force || (force && f != "1") {
					t.Errorf("entry %d: force field %q present=%v, want present=%v", i, f, ok, force)
				}
			}
			if !slices.Equal(got, want[p]) {
				t.Errorf("partition %d: replayed %v, want %v", p, got, want[p])
			}
		}
	}
	res, err := pipeline.Replay(ctx, c, keys, pipeline.ReplayOptions{Stream: pipeline.StreamDedupe, Campaign: "a", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Scanned != 40 || res.Injected != 26 {
		t.Fatalf("scanned %d injected %d, want 40 and 26", res.Scanned, res.Injected)
	}
	check(t, "5039-0", true)

	// Without --force a replay strips the force of entries that carried it,
	// whole or device by device. The forced copies just written are after To.
	to, _ := pipeline.IDBound("5039-0")
	if _, err := pipeline.Replay(ctx, c, keys, pipeline.ReplayOptions{Stream: pipeline.StreamDedupe, Campaign: "a", To: to}); err != nil {
		t.Fatal(err)
	}
	for p := range keys.Partitions {
		xs := opsRange(t, c, keys.Stream(pipeline.StreamDedupe, p), "-")
		for _, x := range xs[len(xs)-len(want[p]):] {
			if _, ok := x.FieldValues[pipeline.FieldForce]; ok {
				t.Errorf("partition %d: a replay without --force kept force on %s", p, x.FieldValues["n"])
			}
			if _, ok := x.FieldValues[pipeline.FieldForceDevices]; ok {
				t.Errorf("partition %d: a replay without --force kept the forced devices of %s", p, x.FieldValues["n"])
			}
		}
	}
}

func TestReplayIntoItselfStopsAtTheSnapshot(t *testing.T) {
	c, keys := opsRedis(t)
	ctx := t.Context()
	for i := range 1000 {
		if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.Stream(pipeline.StreamDeliver, i%keys.Partitions),
			Fields: []string{pipeline.FieldCampaign, "c", "n", strconv.Itoa(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := pipeline.Replay(ctx, c, keys, pipeline.ReplayOptions{Stream: pipeline.StreamDeliver, PageSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	if res.Injected != 1000 {
		t.Fatalf("injected %d, want 1000", res.Injected)
	}
	seen := map[string]int{}
	for p := range keys.Partitions {
		for _, x := range opsRange(t, c, keys.Stream(pipeline.StreamDeliver, p), "-") {
			seen[x.FieldValues["n"]]++
		}
		if res.ByPart[p] != 250 {
			t.Errorf("partition %d: %d re-injected, want 250", p, res.ByPart[p])
		}
	}
	for i := range 1000 {
		if seen[strconv.Itoa(i)] != 2 {
			t.Fatalf("entry %d present %d times, want 2 (original + one replay)", i, seen[strconv.Itoa(i)])
		}
	}
}

func TestReplayDryRunAndInto(t *testing.T) {
	c, keys := opsRedis(t)
	ctx := t.Context()
	for i := range 8 {
		opsAdd(t, c, keys.Stream(pipeline.StreamDeliver, i%keys.Partitions), fmt.Sprintf("%d-0", 100+i), pipeline.FieldCampaign, "c", "n", strconv.Itoa(i))
	}
	res, err := pipeline.Replay(ctx, c, keys, pipeline.ReplayOptions{Stream: pipeline.StreamDeliver, DryRun: true})
	if err != nil || res.Injected != 8 {
		t.Fatalf("dry run: %+v, %v", res, err)
	}
	for p := range keys.Partitions {
		if n := len(opsRange(t, c, keys.Stream(pipeline.StreamDeliver, p), "-")); n != 2 {
			t.Fatalf("dry run wrote: partition %d has %d entries", p, n)
		}
	}
	// deliver → dedupe keeps the partition (and so the marks' hash tag).
	res, err = pipeline.Replay(ctx, c, keys, pipeline.ReplayOptions{Stream: pipeline.StreamDeliver, Into: pipeline.StreamDedupe, Partitions: []int{1}})
	if err != nil || res.Injected != 2 {
		t.Fatalf("into dedupe: %+v, %v", res, err)
	}
	if got := injected(t, c, keys.Stream(pipeline.StreamDedupe, 1), "0-0"); !slices.Equal(got, []string{"1", "5"}) {
		t.Fatalf("dedupe partition 1 got %v, want [1 5]", got)
	}
	for _, p := range []int{0, 2, 3} {
		if n := len(opsRange(t, c, keys.Stream(pipeline.StreamDedupe, p), "-")); n != 0 {
			t.Errorf("dedupe partition %d got %d entries, want 0", p, n)
		}
	}
}

func TestReplayRefusesWhatItCannotDo(t *testing.T) {
	c, keys := opsRedis(t)
	from, _ := pipeline.IDBound("200-0")
	to, _ := pipeline.IDBound("100-0")
	tests := []struct {
		name string
		give pipeline.ReplayOptions
	}{
		{"unknown stream", pipeline.ReplayOptions{Stream: "nope"}},
		{"dlq", pipeline.ReplayOptions{Stream: pipeline.StreamDLQ}},
		{"force on ingest", pipeline.ReplayOptions{Stream: pipeline.StreamIngest, Force: true}},
		{"force on campaigns", pipeline.ReplayOptions{Stream: pipeline.StreamCampaigns, Force: true}},
		{"campaign filter on ingest", pipeline.ReplayOptions{Stream: pipeline.StreamIngest, Campaign: "x"}},
		{"ranges into deliver", pipeline.ReplayOptions{Stream: pipeline.StreamRanges, Into: pipeline.StreamDeliver}},
		{"to before from", pipeline.ReplayOptions{Stream: pipeline.StreamDeliver, From: from, To: to}},
		{"partition out of range", pipeline.ReplayOptions{Stream: pipeline.StreamDeliver, Partitions: []int{4}}},
	}
	for _, tt := range tests {
		if _, err := pipeline.Replay(t.Context(), c, keys, tt.give); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}

func TestParseBound(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	tests := []struct {
		give, want string
	}{
		{"1700000000123-7", "1700000000123-7"},
		{"1700000000123", "2023-11-14T22:13:20.123Z"},
		{"2023-11-14T22:13:20.123456Z", "2023-11-14T22:13:20.123Z"},
		{"2023-11-14T23:13:20.5+01:00", "2023-11-14T22:13:20.500Z"},
		{"15m", "2023-11-14T21:58:20.000Z"},
		{"15m ago", "2023-11-14T21:58:20.000Z"},
		{"-1h", "2023-11-14T21:13:20.000Z"},
		{"", "open"},
	}
	for _, tt := range tests {
		b, err := pipeline.ParseBound(tt.give, now)
		if err != nil || b.String() != tt.want {
			t.Errorf("ParseBound(%q) = %s, %v; want %s", tt.give, b, err, tt.want)
		}
	}
	for _, bad := range []string{"yesterday", "12-3-4", "1700000000123-x"} {
		if _, err := pipeline.ParseBound(bad, now); err == nil {
			t.Errorf("ParseBound(%q) accepted", bad)
		}
	}
}

func TestResplitAppendsTheCampaign(t *testing.T) {
	c, keys := opsRedis(t)
	id, err := pipeline.Resplit(t.Context(), c, keys, "camp-9")
	if err != nil {
		t.Fatal(err)
	}
	xs := opsRange(t, c, keys.Stream(pipeline.StreamCampaigns, keys.HashPartition("camp-9")), "-")
	if len(xs) != 1 || xs[0].ID != id || !maps.Equal(xs[0].FieldValues, map[string]string{pipeline.FieldCampaign: "camp-9"}) {
		t.Fatalf("campaigns partition holds %+v, want one entry {campaign: camp-9} with id %s", xs, id)
	}
}
