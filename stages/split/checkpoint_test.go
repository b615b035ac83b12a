package split_test

import (
	"cmp"
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/split"
)

// TestCheckpointWriteFailureKeepsRangeIDs: when split's checkpoint write
// fails after a cut (Redis refuses it here; a crash or a timeout there
// leaves the same state) and subscribers leave before the campaign is cut
// again, every range id still stands for one [lo, hi] and ranges_total
// counts them. The old code emitted a range, failed to record it, and
// emitted the same id again with other bounds.
func TestCheckpointWriteFailureKeepsRangeIDs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.subscribe("ch", upTo(1000))

	// The handler's Redis user may read every key, and write only while
	// the test lets it; the runner (reads, emits, acks) keeps f.rdb.
	user, pass := "split-"+strconv.FormatUint(rand.Uint64(), 36), strconv.FormatUint(rand.Uint64(), 36)
	acl := func(args ...string) {
		t.Helper()
		if err := f.rdb.Do(ctx, f.rdb.B().Arbitrary("ACL").Args(args...).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	acl("SETUSER", user, "on", ">"+pass, "+@all", "&*", "~*")
	t.Cleanup(func() { f.rdb.Do(context.Background(), f.rdb.B().Arbitrary("ACL").Args("DELUSER", user).Build()) })
	limited, err := pipeline.NewRedisConfig(pipeline.RedisConfig{Addr: env.Redis.Addr, Username: user, Password: pass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(limited.Close)

	// A deliver backlog holds split after it planned the channel.
	deliver := f.deliverBacklog(20)
	f.run(split.Config{Redis: limited, RangeSize: 100, Segments: 1, HighWater: 10, MaxWait: 50 * time.Millisecond})
	f.create("c", "ch")
	pipelinetest.Eventually(t, 10*time.Second, "the campaign requeued", func() bool {
		n, _ := f.rdb.Do(ctx, f.rdb.B().Xlen().Key(f.keys.Stream(pipeline.StreamCampaigns, f.keys.HashPartition("c"))).Build()).AsInt64()
		return n >= 2
	})

	// From now on the checkpoint cannot be written, and deliver catches up.
	acl("SETUSER", user, "resetkeys", "%R~*")
	if err := f.rdb.Do(ctx, f.rdb.B().XgroupSetid().Key(deliver).Group("deliver").Id("$").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	ck := f.keys.SplitCheckpoint("c")
	pipelinetest.Eventually(t, 10*time.Second, "a checkpoint write refused", func() bool {
		log, err := f.rdb.Do(ctx, f.rdb.B().Arbitrary("ACL").Args("LOG").Build()).ToArray()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range log {
			m, _ := e.AsStrMap()
			if m["username"] == user && m["object"] == ck {
				return true
			}
		}
		return false
	})
	if _, err := f.db.Exec(ctx, `DELETE FROM subscriptions WHERE channel = 'ch' AND user_id BETWEEN 40 AND 60`); err != nil {
		t.Fatal(err)
	}
	acl("SETUSER", user, "~*")
	pipelinetest.Eventually(t, 20*time.Second, "split done", func() bool { return f.splitDone("c") })

	checkRangeIDs(t, f, "c")
}

// TestTwoSplittersAtOnceKeepRangeIDs: a campaign delivered twice at once (a
// replay beside a requeue, a Resplit) is cut by two splitters while
// subscribers come and go; every range id still stands for one [lo, hi],
// the same for both. The old code's splitters each cut from what they saw.
func TestTwoSplittersAtOnceKeepRangeIDs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const n = 3000
	f.subscribe("ch", upTo(n))
	churnCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for churnCtx.Err() == nil {
			u := 1 + rand.Int64N(n)
			if rand.IntN(2) == 0 {
				f.db.Exec(churnCtx, `DELETE FROM subscriptions WHERE channel = 'ch' AND user_id BETWEEN $1 AND $1 + 20`, u)
			} else {
				f.db.Exec(churnCtx, `INSERT INTO subscriptions (channel, user_id) SELECT 'ch', g FROM generate_series($1::bigint, $1 + 20) g
					ON CONFLICT DO NOTHING`, u)
			}
		}
	})
	t.Cleanup(func() { stop(); wg.Wait() })
	cfg := split.Config{RangeSize: 10, Segments: 4, Parallel: 2}
	f.runAs("s1", cfg)
	f.runAs("s2", cfg)
	f.create("c", "ch")
	if _, err := pipeline.Emit(ctx, f.rdb, pipeline.Message{
		Stream: f.keys.Stream(pipeline.StreamCampaigns, f.keys.HashPartition("c")),
		Fields: []string{pipeline.FieldCampaign, "c"}}); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 30*time.Second, "both entries split", func() bool {
		n, _ := pipeline.Outstanding(ctx, f.rdb, f.keys.Streams(pipeline.StreamCampaigns), "split")
		return n == 0 && f.splitDone("c")
	})
	stop()
	checkRangeIDs(t, f, "c")
}

// checkRangeIDs fails unless every range id of campaign id was emitted with
// one [lo, hi], ranges_total counts the ids, and the ranges tile
// 1..MaxInt64 (one channel).
func checkRangeIDs(t *testing.T, f *fixture, id string) {
	t.Helper()
	bounds := map[string]rng{}
	for _, r := range f.ranges(id) {
		if b, ok := bounds[r.id]; ok && b != r {
			t.Errorf("range %s emitted as [%d, %d] and as [%d, %d]", r.id, b.lo, b.hi, r.lo, r.hi)
		}
		bounds[r.id] = r
	}
	total, _ := f.rdb.Do(context.Background(), f.rdb.B().Hget().Key(f.keys.Campaign(id)).Field(pipeline.CampaignRangesTotal).Build()).AsInt64()
	if total != int64(len(bounds)) {
		t.Errorf("ranges_total %d, %d range ids emitted", total, len(bounds))
	}
	tiles := make([]rng, 0, len(bounds))
	for _, r := range bounds {
		tiles = append(tiles, r)
	}
	slices.SortFunc(tiles, func(a, b rng) int { return cmp.Compare(a.lo, b.lo) })
	next := int64(1)
	for _, r := range tiles {
		if r.lo != next {
			t.Fatalf("range %+v, want it to start at %d", r, next)
		}
		next = r.hi + 1
	}
	if tiles[len(tiles)-1].hi != math.MaxInt64 {
		t.Fatalf("the last range ends at %d", tiles[len(tiles)-1].hi)
	}
}
