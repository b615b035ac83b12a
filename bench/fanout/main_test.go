package fanout

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
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
	"github.com/pushpipe/pushpipe/stages/dedupe"
	"github.com/pushpipe/pushpipe/stages/resolve"
	"github.com/pushpipe/pushpipe/stages/split"
)

var (
	env *pipelinetest.Env
	bin string // the pushpipe binary, for tests that kill stage processes
)

// TestMain gets the pushpipe binary (the kill test runs the stages as
// real processes) and starts standalone Redis, a 3-master cluster and
// PostgreSQL for the whole package.
func TestMain(m *testing.M) {
	var err error
	if bin, err = pipelinetest.BinaryPath(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pipelinetest.Main(cleanupAfter{m}, pipelinetest.EnvOptions{Redis: true, Cluster: true, Postgres: true}, &env)
}

// cleanupAfter closes the benchmarks' shared data after the tests.
type cleanupAfter struct{ m *testing.M }

func (c cleanupAfter) Run() int {
	defer closeBenchData()
	return c.m.Run()
}

// fixture is one test's world: a fresh database with the schema, a Redis
// client and a key prefix of its own.
type fixture struct {
	t     testing.TB
	addrs string // Redis address(es), comma-separated
	dbURL string
	rdb   rueidis.Client
	db    *pgxpool.Pool
	keys  pipeline.Keys
}

func newFixture(t testing.TB, addrs string) *fixture {
	t.Helper()
	ctx := context.Background()
	url := pipelinetest.MigratedDatabaseT(t, env.Postgres)
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	rdb, err := pipeline.NewRedis(addrs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	return &fixture{t: t, addrs: addrs, dbURL: url, rdb: rdb, db: db,
		keys: pipeline.NewKeys("t"+strconv.FormatUint(rand.Uint64(), 36), 16)}
}

// servers runs a test against standalone Redis and against the cluster.
func servers(t *testing.T, fn func(t *testing.T, f *fixture)) {
	t.Run("standalone", func(t *testing.T) { fn(t, newFixture(t, env.Redis.Addr)) })
	t.Run("cluster", func(t *testing.T) { fn(t, newFixture(t, strings.Join(env.Cluster.Addrs, ","))) })
}

// subscribe inserts subscriptions with COPY.
func (f *fixture) subscribe(channel string, users []int64) {
	f.t.Helper()
	_, err := f.db.CopyFrom(context.Background(), pgx.Identifier{"subscriptions"}, []string{"channel", "user_id"},
		pgx.CopyFromSlice(len(users), func(i int) ([]any, error) { return []any{channel, users[i]}, nil }))
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.db.Exec(context.Background(), "VACUUM ANALYZE subscriptions"); err != nil {
		f.t.Fatal(err)
	}
}

// mute writes users' preference hashes the way the API does: one field per
// muted channel ("c:") or category ("k:").
func (f *fixture) mute(prefs map[int64][]string) {
	f.t.Helper()
	cmds := make(rueidis.Commands, 0, len(prefs))
	for u, fields := range prefs {
		cmd := f.rdb.B().Hset().Key(f.keys.Preferences(u)).FieldValue()
		for _, fl := range fields {
			cmd = cmd.FieldValue(fl, "1")
		}
		cmds = append(cmds, cmd.Build())
	}
	for _, res := range f.rdb.DoMulti(context.Background(), cmds...) {
		if err := res.Error(); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fixture) create(c campaign.Campaign) (campaign.Campaign, bool) {
	f.t.Helper()
	c, created, err := campaign.Create(context.Background(), f.rdb, f.db, f.keys, c)
	if err != nil {
		f.t.Fatal(err)
	}
	return c, created
}

// stages runs split, resolve and dedupe runners in this process until the
// returned stop is called (or the test ends).
func (f *fixture) stages(rangeSize int) (stop func()) {
	f.t.Helper()
	log := zerolog.Nop()
	opts := func(stage, stream string, batch int) pipeline.Options {
		return pipeline.Options{Stage: stage, Stream: stream, Consumer: stage + "-1", BatchSize: batch,
			Block: 20 * time.Millisecond}
	}
	sp := split.New(split.Config{Redis: f.rdb, DB: f.db, Keys: f.keys, Log: log, RangeSize: rangeSize})
	rs := resolve.New(resolve.Config{Redis: f.rdb, DB: f.db, Keys: f.keys, Log: log})
	dd := dedupe.New(dedupe.Config{Redis: f.rdb, Keys: f.keys, Log: log})
	dedupeOpts := opts("dedupe", pipeline.StreamDedupe, 50)
	dedupeOpts.Express = true // direct messages come in on the express lane
	runners := []*pipeline.Runner{
		pipeline.NewRunner(f.rdb, f.keys, opts("split", pipeline.StreamCampaigns, 1), sp, log, nil),
		pipeline.NewRunner(f.rdb, f.keys, opts("resolve", pipeline.StreamRanges, 2), rs, log, nil),
		pipeline.NewRunner(f.rdb, f.keys, dedupeOpts, dd, log, nil),
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, r := range runners {
		wg.Go(func() { r.Run(ctx) })
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	f.t.Cleanup(stop)
	pipelinetest.Eventually(f.t, 10*time.Second, "stages ready", func() bool {
		for _, r := range runners {
			if !r.Ready() {
				return false
			}
		}
		return true
	})
	return stop
}

// settled waits until split finished the campaign and every stage's input
// is drained (nothing unread, nothing pending).
func (f *fixture) settled(id string, timeout time.Duration) {
	f.t.Helper()
	ctx := context.Background()
	pipelinetest.Eventually(f.t, timeout, "campaign "+id+" split, resolved and deduped", func() bool {
		done, err := f.rdb.Do(ctx, f.rdb.B().Hget().Key(f.keys.Campaign(id)).Field(pipeline.CampaignSplitDone).Build()).ToString()
		if err != nil || done != "1" {
			return false
		}
		for _, s := range []struct{ stream, group string }{
			{pipeline.StreamCampaigns, "split"}, {pipeline.StreamRanges, "resolve"}, {pipeline.StreamDedupe, "dedupe"},
		} {
			n, err := pipeline.Outstanding(ctx, f.rdb, f.keys.Streams(s.stream), s.group)
			if err != nil || n != 0 {
				return false
			}
		}
		return true
	})
}

// delivered reads every deliver partition and counts how often each user
// was forwarded for the campaign, checking each user's partition.
func (f *fixture) delivered(id string) map[int64]int {
	f.t.Helper()
	got := map[int64]int{}
	for p := range f.keys.Partitions {
		start := "-"
		for {
			xs, err := f.rdb.Do(context.Background(), f.rdb.B().Xrange().Key(f.keys.Stream(pipeline.StreamDeliver, p)).
				Start(start).End("+").Count(1000).Build()).AsXRange()
			if err != nil {
				f.t.Fatal(err)
			}
			for _, x := range xs {
				if x.FieldValues[pipeline.FieldCampaign] != id {
					continue
				}
				ids, err := pipeline.DecodeIDs(x.FieldValues[pipeline.FieldUsers])
				if err != nil {
					f.t.Fatalf("deliver entry %s: %v", x.ID, err)
				}
				for _, u := range ids {
					if f.keys.UserPartition(u) != p {
						f.t.Fatalf("user %d forwarded on partition %d, belongs to %d", u, p, f.keys.UserPartition(u))
					}
					got[u]++
				}
			}
			if len(xs) < 1000 {
				break
			}
			start = "(" + xs[len(xs)-1].ID
		}
	}
	return got
}

// expectExactly checks that every wanted user was forwarded exactly once and
// nobody else at all.
func expectExactly(t testing.TB, got map[int64]int, want map[int64]bool) {
	t.Helper()
	var missing, extra, dups int
	for u := range want {
		if got[u] == 0 {
			missing++
		}
	}
	for u, n := range got {
		if !want[u] {
			extra++
		}
		if n > 1 {
			dups++
		}
	}
	if missing+extra+dups > 0 || len(got) != len(want) {
		t.Fatalf("forwarded %d users, want %d: %d missing, %d not targets, %d forwarded more than once",
			len(got), len(want), missing, extra, dups)
	}
}

// progress is campaign.Progress or fails the test.
func (f *fixture) progress(id string) campaign.Report {
	f.t.Helper()
	rep, err := campaign.Progress(context.Background(), f.rdb, f.db, f.keys, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return rep
}

// finishDelivery stands in for the deliver stage: it marks every target of
// the campaign terminal, partition by partition.
func (f *fixture) finishDelivery(id string) {
	f.t.Helper()
	ctx := context.Background()
	for p := range f.keys.Partitions {
		n, err := f.rdb.Do(ctx, f.rdb.B().Hget().Key(f.keys.Stats(p, id)).Field(pipeline.StatTargets).Build()).AsInt64()
		if rueidis.IsRedisNil(err) {
			continue
		}
		if err != nil {
			f.t.Fatal(err)
		}
		if err := f.rdb.Do(ctx, f.rdb.B().Hset().Key(f.keys.Stats(p, id)).FieldValue().
			FieldValue(pipeline.StatUsersDone, strconv.FormatInt(n, 10)).Build()).Error(); err != nil {
			f.t.Fatal(err)
		}
	}
}

// sample picks n distinct ids from [lo, lo+span), sorted.
func sample(n int, lo, span int64) []int64 {
	set := make(map[int64]bool, n)
	for len(set) < n {
		set[lo+rand.Int64N(span)] = true
	}
	return sortedKeys(set)
}

func sortedKeys(set map[int64]bool) []int64 {
	out := make([]int64, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// pick chooses n distinct ids of from.
func pick(from []int64, n int) []int64 {
	idx := rand.Perm(len(from))[:n]
	out := make([]int64, n)
	for i, j := range idx {
		out[i] = from[j]
	}
	slices.Sort(out)
	return out
}
