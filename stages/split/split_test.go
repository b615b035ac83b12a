package split_test

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/split"
)

var env *pipelinetest.Env

func TestMain(m *testing.M) {
	pipelinetest.Main(m, pipelinetest.EnvOptions{Redis: true, Postgres: true}, &env)
}

type fixture struct {
	t    *testing.T
	rdb  rueidis.Client
	db   *pgxpool.Pool
	keys pipeline.Keys
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	url := pipelinetest.MigratedDatabaseT(t, env.Postgres)
	db, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	rdb, err := pipeline.NewRedis(env.Redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	return &fixture{t: t, rdb: rdb, db: db, keys: pipeline.NewKeys("t"+strconv.FormatUint(rand.Uint64(), 36), 16)}
}

func (f *fixture) subscribe(channel string, users []int64) {
	f.t.Helper()
	_, err := f.db.CopyFrom(context.Background(), pgx.Identifier{"subscriptions"}, []string{"channel", "user_id"},
		pgx.CopyFromSlice(len(users), func(i int) ([]any, error) { return []any{channel, users[i]}, nil }))
	if err != nil {
		f.t.Fatal(err)
	}
}

// run runs a split runner until the test ends. The handler uses
// cfg.Redis when set (the runner f.rdb all the same).
func (f *fixture) run(cfg split.Config) { f.runAs("s1", cfg) }

// runAs is run as consumer name.
func (f *fixture) runAs(name string, cfg split.Config) {
	f.t.Helper()
	if cfg.Redis == nil {
		cfg.Redis = f.rdb
	}
	cfg.DB, cfg.Keys, cfg.Log = f.db, f.keys, zerolog.Nop()
	r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "split", Stream: pipeline.StreamCampaigns,
		Consumer: name, BatchSize: 1, Block: 20 * time.Millisecond}, split.New(cfg), zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx) })
	f.t.Cleanup(func() { cancel(); wg.Wait() })
	pipelinetest.Eventually(f.t, 10*time.Second, "split ready", r.Ready)
}

func (f *fixture) create(id string, channels ...string) {
	f.t.Helper()
	_, _, err := campaign.Create(context.Background(), f.rdb, f.db, f.keys,
		campaign.Campaign{ID: id, App: "a", Channels: channels, Title: "t"})
	if err != nil {
		f.t.Fatal(err)
	}
}

// deliverBacklog leaves n entries outstanding in partition 0's deliver
// stream (the backlog split waits on), and returns the stream.
func (f *fixture) deliverBacklog(n int) string {
	f.t.Helper()
	deliver := f.keys.Stream(pipeline.StreamDeliver, 0)
	if err := pipeline.CreateGroup(f.t.Context(), f.rdb, deliver, "deliver"); err != nil {
		f.t.Fatal(err)
	}
	backlog := make([]pipeline.Message, n)
	for i := range backlog {
		backlog[i] = pipeline.Message{Stream: deliver, Fields: []string{"x", "1"}}
	}
	if _, err := pipeline.Emit(f.t.Context(), f.rdb, backlog...); err != nil {
		f.t.Fatal(err)
	}
	return deliver
}

// upTo is the user ids 1..n.
func upTo(n int) []int64 {
	users := make([]int64, n)
	for i := range users {
		users[i] = int64(i + 1)
	}
	return users
}

func (f *fixture) splitDone(id string) bool {
	v, _ := f.rdb.Do(context.Background(), f.rdb.B().Hget().Key(f.keys.Campaign(id)).Field(pipeline.CampaignSplitDone).Build()).ToString()
	return v == "1"
}

type rng struct {
	id, channel string
	lo, hi      int64
}

// ranges reads every ranges entry of a campaign.
func (f *fixture) ranges(id string) []rng {
	f.t.Helper()
	var out []rng
	for _, s := range f.keys.Streams(pipeline.StreamRanges) {
		xs, err := f.rdb.Do(context.Background(), f.rdb.B().Xrange().Key(s).Start("-").End("+").Build()).AsXRange()
		if err != nil {
			f.t.Fatal(err)
		}
		for _, x := range xs {
			v := x.FieldValues
			if v[pipeline.FieldCampaign] != id {
				continue
			}
			if want := f.keys.Stream(pipeline.StreamRanges, f.keys.HashPartition(id+"/"+v[pipeline.FieldRange])); s != want {
				f.t.Fatalf("range %s on %s, want %s", v[pipeline.FieldRange], s, want)
			}
			lo, _ := strconv.ParseInt(v[pipeline.FieldLo], 10, 64)
			hi, _ := strconv.ParseInt(v[pipeline.FieldHi], 10, 64)
			out = append(out, rng{v[pipeline.FieldRange], v[pipeline.FieldChannel], lo, hi})
		}
	}
	slices.SortFunc(out, func(a, b rng) int {
		if a.channel != b.channel {
			return strings.Compare(a.channel, b.channel)
		}
		return cmp.Compare(a.lo, b.lo)
	})
	return out
}

// rangesOnce checks that campaign id's ranges number want, each emitted
// once.
func (f *fixture) rangesOnce(id string, want int) {
	f.t.Helper()
	rs := f.ranges(id)
	seen := map[string]bool{}
	for _, r := range rs {
		if seen[r.id] {
			f.t.Fatalf("range %s emitted twice", r.id)
		}
		seen[r.id] = true
	}
	if len(rs) != want {
		f.t.Fatalf("%d ranges, want %d", len(rs), want)
	}
}

func (f *fixture) count(channel string, lo, hi int64) int {
	f.t.Helper()
	var n int
	err := f.db.QueryRow(context.Background(), `SELECT count(*) FROM subscriptions WHERE channel=$1 AND user_id BETWEEN $2 AND $3`,
		channel, lo, hi).Scan(&n)
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// TestRangesHoldRangeSizeSubscribers: whatever the ids' spread, the ranges
// of a channel tile 1..MaxInt64 without gap or overlap; within each segment
// every range but the last holds exactly RangeSize subscribers; range ids
// are channel/segment.index from 0. One segment per channel gives exactly
// n/size+1 ranges, four at most three more.
func TestRangesHoldRangeSizeSubscribers(t *testing.T) {
	const size = 100
	seq := func(n int) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(i + 1)
		}
		return out
	}
	sparse := func(n int) []int64 {
		set := map[int64]bool{}
		for len(set) < n {
			set[1+rand.Int64N(1_000_000_000_000)] = true
		}
		out := make([]int64, 0, n)
		for u := range set {
			out = append(out, u)
		}
		return out
	}
	channels := map[string][]int64{
		"empty": nil, "one": {42}, "under": seq(size - 1), "exact": seq(size), "over": seq(size + 1),
		"many": seq(10*size + 37), "sparse": sparse(25 * size), "edge": {1, math.MaxInt64 - 1, math.MaxInt64},
		"clustered": append(seq(5*size), 1_000_000_000+int64(rand.IntN(1000))),
	}
	var names []string
	for ch := range channels {
		names = append(names, ch)
	}
	slices.Sort(names)
	for _, segments := range []int{1, 4} {
		t.Run("segments="+strconv.Itoa(segments), func(t *testing.T) {
			f := newFixture(t)
			for ch, users := range channels {
				f.subscribe(ch, users)
			}
			f.run(split.Config{RangeSize: size, Segments: segments})
			f.create("c", names...)
			pipelinetest.Eventually(t, 30*time.Second, "split done", func() bool { return f.splitDone("c") })
			all := f.ranges("c")
			for _, ch := range names {
				var rs []rng
				for _, r := range all {
					if r.channel == ch {
						rs = append(rs, r)
					}
				}
				n := len(channels[ch])
				if most := n/size + segments; len(rs) < n/size+1 || len(rs) > most || segments == 1 && len(rs) != n/size+1 {
					t.Errorf("%s: %d ranges for %d subscribers in %d segments", ch, len(rs), n, segments)
					continue
				}
				next := int64(1)
				seg, idx := 0, 0
				for i, r := range rs {
					if r.lo != next {
						t.Errorf("%s: range %+v, want it to start at %d", ch, r, next)
					}
					if r.id != fmt.Sprintf("%s/%d.%d", ch, seg, idx) {
						if r.id != fmt.Sprintf("%s/%d.0", ch, seg+1) {
							t.Errorf("%s: range %d has id %s after %s/%d.%d", ch, i, r.id, ch, seg, idx-1)
						}
						seg, idx = seg+1, 0
					}
					lastOfSegment := i == len(rs)-1 || rs[i+1].id == fmt.Sprintf("%s/%d.0", ch, seg+1)
					if got := f.count(ch, r.lo, r.hi); !lastOfSegment && got != size || got > size {
						t.Errorf("%s: range %+v holds %d subscribers", ch, r, got)
					}
					idx++
					next = r.hi + 1
				}
				if rs[len(rs)-1].hi != math.MaxInt64 {
					t.Errorf("%s: the last range ends at %d", ch, rs[len(rs)-1].hi)
				}
			}
			v, _ := f.rdb.Do(context.Background(), f.rdb.B().Hget().Key(f.keys.Campaign("c")).Field(pipeline.CampaignRangesTotal).Build()).AsInt64()
			if v != int64(len(all)) {
				t.Fatalf("ranges_total %d, emitted %d", v, len(all))
			}
			ids := map[string]bool{}
			for _, r := range all {
				if ids[r.id] {
					t.Fatalf("range id %s emitted twice", r.id)
				}
				ids[r.id] = true
			}
		})
	}
}

// TestRedeliveredCampaignResumes: a campaign entry delivered again (a crash
// before the ack, a replay) continues from the checkpoint; with the
// checkpoint gone it re-emits exactly the same ranges.
func TestRedeliveredCampaignResumes(t *testing.T) {
	f := newFixture(t)
	users := make([]int64, 1234)
	for i := range users {
		users[i] = int64(i*7 + 3)
	}
	f.subscribe("ch", users)
	f.run(split.Config{RangeSize: 100, Segments: 3})
	f.create("c", "ch")
	pipelinetest.Eventually(t, 10*time.Second, "split done", func() bool { return f.splitDone("c") })
	first := f.ranges("c")
	requeue := func() {
		if _, err := pipeline.Emit(context.Background(), f.rdb, pipeline.Message{
			Stream: f.keys.Stream(pipeline.StreamCampaigns, f.keys.HashPartition("c")),
			Fields: []string{pipeline.FieldCampaign, "c"}}); err != nil {
			t.Fatal(err)
		}
		pipelinetest.Eventually(t, 10*time.Second, "requeued campaign handled", func() bool {
			n, _ := pipeline.Outstanding(context.Background(), f.rdb, f.keys.Streams(pipeline.StreamCampaigns), "split")
			return n == 0
		})
	}
	requeue()
	if again := f.ranges("c"); len(again) != len(first) {
		t.Fatalf("a finished campaign delivered again emitted %d more ranges", len(again)-len(first))
	}
	if err := f.rdb.Do(context.Background(), f.rdb.B().Del().Key(f.keys.SplitCheckpoint("c")).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	requeue()
	again := f.ranges("c")
	if len(again) != 2*len(first) {
		t.Fatalf("%d ranges after a full re-split, want %d", len(again), 2*len(first))
	}
	for i, r := range first {
		if again[2*i] != r || again[2*i+1] != r {
			t.Fatalf("re-split range %d: %+v and %+v, first time %+v", i, again[2*i], again[2*i+1], r)
		}
	}
}

// TestDeliverBacklogPausesSplit: while the deliver group has more than
// HighWater entries outstanding, split stops after MaxWait, requeues the
// campaign and lets go of it; once deliver catches up it finishes from its
// checkpoint, every range emitted once.
func TestDeliverBacklogPausesSplit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.subscribe("ch", upTo(1000))
	deliver := f.deliverBacklog(20)
	f.run(split.Config{RangeSize: 100, Segments: 1, HighWater: 10, MaxWait: 100 * time.Millisecond})
	f.create("c", "ch")
	pipelinetest.Eventually(t, 10*time.Second, "the campaign requeued", func() bool {
		n, _ := f.rdb.Do(ctx, f.rdb.B().Xlen().Key(f.keys.Stream(pipeline.StreamCampaigns, f.keys.HashPartition("c"))).Build()).AsInt64()
		return n >= 2
	})
	if f.splitDone("c") || len(f.ranges("c")) != 0 {
		t.Fatalf("split went on with the deliver backlog above the mark: %d ranges", len(f.ranges("c")))
	}
	// deliver catches up
	if err := f.rdb.Do(ctx, f.rdb.B().XgroupSetid().Key(deliver).Group("deliver").Id("$").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 10*time.Second, "split done", func() bool { return f.splitDone("c") })
	f.rangesOnce("c", 11)
}
