package prefs_test

import (
	"context"
	"maps"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/pipeline/prefs"
)

var env *pipelinetest.Env

func TestMain(m *testing.M) {
	pipelinetest.Main(m, pipelinetest.EnvOptions{Redis: true, Postgres: true}, &env)
}

// PostgreSQL is the record: after Redis lost everything, Load puts back
// every user's newest preferences and the partition's marker; a load that
// read a row before a newer update landed never overwrites that update.
func TestLoadRebuildsFromPostgres(t *testing.T) {
	ctx := context.Background()
	url := pipelinetest.MigratedDatabaseT(t, env.Postgres)
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	rdb, err := pipeline.NewRedis(env.Redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	// Keys of this run's own: a run before it (-count) left newer
	// versions of the same users in Redis, which refuse this run's Puts.
	keys := pipeline.NewKeys("prefs"+strconv.FormatUint(rand.Uint64(), 36), 4)
	hash := func(u int64) map[string]string {
		t.Helper()
		m, err := rdb.Do(ctx, rdb.B().Hgetall().Key(keys.Preferences(u)).Build()).AsStrMap()
		if err != nil {
			t.Fatal(err)
		}
		delete(m, prefs.VersionField)
		return m
	}
	put := func(p prefs.Prefs) {
		t.Helper()
		if err := prefs.Put(ctx, db, rdb, keys, p); err != nil {
			t.Fatal(err)
		}
	}
	// Users in every partition; 5000 mutes one channel (more than a chunk of
	// a load in partition 0 alone).
	var users []int64
	for u := int64(1); u <= 5000; u++ {
		users = append(users, u)
	}
	for _, u := range users {
		put(prefs.Prefs{User: u, Channels: []string{"news"}})
	}
	put(prefs.Prefs{User: 7, Channels: []string{"sport"}, Categories: []string{"promo"}}) // a second version
	put(prefs.Prefs{User: 8})                                                             // unmuted everything
	want := map[int64]map[string]string{
		1: {"c:news": "1"}, 7: {"c:sport": "1", "k:promo": "1"}, 8: {}, 4000: {"c:news": "1"},
	}
	check := func(when string) {
		t.Helper()
		for u, w := range want {
			if got := hash(u); !maps.Equal(got, w) {
				t.Errorf("%s: user %d has %v, want %v", when, u, got, w)
			}
		}
	}
	check("after Put")

	if err := rdb.Do(ctx, rdb.B().Flushall().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if got := hash(1); len(got) != 0 {
		t.Fatalf("after FLUSHALL user 1 still has %v", got)
	}
	total := 0
	for p := range keys.Partitions {
		if n, err := rdb.Do(ctx, prefs.Loaded(rdb, keys, p)).AsInt64(); err != nil || n != 0 {
			t.Fatalf("partition %d marked loaded after FLUSHALL (err %v)", p, err)
		}
		n, err := prefs.Load(ctx, db, rdb, keys, p)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n, _ := rdb.Do(ctx, prefs.Loaded(rdb, keys, p)).AsInt64(); n != 1 {
			t.Fatalf("partition %d not marked loaded after Load", p)
		}
	}
	if total != len(users) {
		t.Errorf("loaded %d users, want %d", total, len(users))
	}
	check("after FLUSHALL and Load")

	// A load that read user 7's row, then an update (unmute all), then the
	// load's write: the update stays.
	put(prefs.Prefs{User: 7})
	want[7] = map[string]string{}
	if _, err := db.Exec(ctx, `UPDATE preferences SET version = version - 1, muted_channels = '{sport}' WHERE user_id = 7`); err != nil {
		t.Fatal(err)
	}
	if _, err := prefs.Load(ctx, db, rdb, keys, keys.UserPartition(7)); err != nil {
		t.Fatal(err)
	}
	check("after a stale load")
}
