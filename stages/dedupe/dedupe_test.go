package dedupe_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/dedupe"
)

var env *pipelinetest.Env

func TestMain(m *testing.M) {
	pipelinetest.Main(m, pipelinetest.EnvOptions{Redis: true, Cluster: true}, &env)
}

// servers runs a test against standalone Redis and the 3-master cluster.
func servers(t *testing.T, fn func(t *testing.T, c rueidis.Client)) {
	for _, s := range []struct {
		name  string
		addrs string
	}{{"standalone", env.Redis.Addr}, {"cluster", joinAddrs(env.Cluster.Addrs)}} {
		t.Run(s.name, func(t *testing.T) {
			c, err := pipeline.NewRedis(s.addrs)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			fn(t, c)
		})
	}
}

func joinAddrs(a []string) string {
	s := ""
	for i, x := range a {
		if i > 0 {
			s += ","
		}
		s += x
	}
	return s
}

func newKeys() pipeline.Keys {
	return pipeline.NewKeys("t"+strconv.FormatUint(rand.Uint64(), 36), 16)
}

// register publishes a campaign's expiry the way campaign.Create does.
func register(t testing.TB, c rueidis.Client, keys pipeline.Keys, id string) {
	t.Helper()
	registerAt(t, c, keys, id, time.Now().Add(time.Hour))
}

// registerAt is register of a campaign expiring at exp.
func registerAt(t testing.TB, c rueidis.Client, keys pipeline.Keys, id string, exp time.Time) {
	t.Helper()
	err := c.Do(context.Background(), c.B().Hset().Key(keys.Campaign(id)).FieldValue().
		FieldValue(campaign.HashExpiresMs, strconv.FormatInt(exp.UnixMilli(), 10)).Build()).Error()
	if err != nil {
		t.Fatal(err)
	}
}

// model is what dedupe must compute, kept in Go.
type model struct {
	reached, muted map[int64]bool
	in, sightings  int64
}

func newModel() *model { return &model{reached: map[int64]bool{}, muted: map[int64]bool{}} }

func (m *model) add(u, mu []int64) {
	m.in += int64(len(u) + len(mu))
	m.sightings += int64(len(u))
	for _, id := range u {
		m.reached[id] = true
	}
	for _, id := range mu {
		m.muted[id] = true
	}
}

func (m *model) mutedOnly() int64 {
	var n int64
	for id := range m.muted {
		if !m.reached[id] {
			n++
		}
	}
	return n
}

// emitEntries appends dedupe entries for ids (reached) and muted, cut per
// user partition into entries of at most size ids, the way resolve does.
func emitEntries(t testing.TB, c rueidis.Client, keys pipeline.Keys, id string, reached, muted []int64, size int) {
	t.Helper()
	emitReading(t, c, keys, id, "test", "", reached, muted, size)
}

// emitReading is emitEntries of one reading of a range by resolve.
func emitReading(t testing.TB, c rueidis.Client, keys pipeline.Keys, id, rangeID, reading string, reached, muted []int64, size int) {
	t.Helper()
	byP := map[int][2][]int64{}
	for _, u := range reached {
		p := keys.UserPartition(u)
		g := byP[p]
		g[0] = append(g[0], u)
		byP[p] = g
	}
	for _, u := range muted {
		p := keys.UserPartition(u)
		g := byP[p]
		g[1] = append(g[1], u)
		byP[p] = g
	}
	var msgs []pipeline.Message
	for p, g := range byP {
		slices.Sort(g[0])
		slices.Sort(g[1])
		for len(g[0])+len(g[1]) > 0 {
			nu := min(len(g[0]), size)
			nm := min(len(g[1]), size-nu)
			e := pipeline.DedupeEntry{Campaign: id, Range: rangeID, Reading: reading, Users: g[0][:nu], Muted: g[1][:nm]}
			msgs = append(msgs, pipeline.Message{Stream: keys.Stream(pipeline.StreamDedupe, p), Fields: e.Fields()})
			g[0], g[1] = g[0][nu:], g[1][nm:]
		}
	}
	rand.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	if _, err := pipeline.Emit(context.Background(), c, msgs...); err != nil {
		t.Fatal(err)
	}
}

// runStage runs the dedupe stage until stop is called or the test ends.
func runStage(t testing.TB, c rueidis.Client, keys pipeline.Keys, consumer string) (stop func()) {
	t.Helper()
	return runHandler(t, c, keys, consumer, dedupe.New(dedupe.Config{Redis: c, Keys: keys, Log: zerolog.Nop()}))
}

// runHandler runs h as the dedupe stage until stop is called or the test
// ends.
func runHandler(t testing.TB, c rueidis.Client, keys pipeline.Keys, consumer string, h *dedupe.Handler) (stop func()) {
	t.Helper()
	r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "dedupe", Stream: pipeline.StreamDedupe,
		Consumer: consumer, Block: 20 * time.Millisecond, BatchSize: 50}, h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx) })
	stop = func() { cancel(); wg.Wait() }
	// Until its groups exist, "drained" (nothing lagging or pending) would
	// hold before anything was read.
	pipelinetest.Eventually(t, 10*time.Second, "the stage ready", r.Ready)
	t.Cleanup(stop)
	pipelinetest.Eventually(t, 10*time.Second, "dedupe runner ready", r.Ready)
	return stop
}

// drained waits until the dedupe group has nothing outstanding.
func drained(t testing.TB, c rueidis.Client, keys pipeline.Keys) {
	t.Helper()
	pipelinetest.Eventually(t, 30*time.Second, "dedupe drained", func() bool {
		n, err := pipeline.Outstanding(context.Background(), c, keys.Streams(pipeline.StreamDedupe), "dedupe")
		return err == nil && n == 0
	})
}

// delivered reads every deliver partition and returns how often each user
// was forwarded for the campaign, checking each entry's partition.
func delivered(t *testing.T, c rueidis.Client, keys pipeline.Keys, id string) (map[int64]int, int) {
	t.Helper()
	got := map[int64]int{}
	entries := 0
	for p := range keys.Partitions {
		xs, err := c.Do(context.Background(), c.B().Xrange().Key(keys.Stream(pipeline.StreamDeliver, p)).
			Start("-").End("+").Build()).AsXRange()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range xs {
			if x.FieldValues[pipeline.FieldCampaign] != id {
				continue
			}
			entries++
			ids, err := pipeline.DecodeIDs(x.FieldValues[pipeline.FieldUsers])
			if err != nil {
				t.Fatalf("deliver entry %s: %v", x.ID, err)
			}
			if !slices.IsSorted(ids) || len(ids) == 0 {
				t.Fatalf("deliver entry %s: ids not sorted or empty: %v", x.ID, ids)
			}
			for _, u := range ids {
				if keys.UserPartition(u) != p {
					t.Fatalf("user %d delivered on partition %d, belongs to %d", u, p, keys.UserPartition(u))
				}
				got[u]++
			}
		}
	}
	return got, entries
}

func stats(t *testing.T, c rueidis.Client, keys pipeline.Keys, id string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for p := range keys.Partitions {
		m, err := c.Do(context.Background(), c.B().Hgetall().Key(keys.Stats(p, id)).Build()).AsIntMap()
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			out[k] += v
		}
	}
	return out
}

// check compares what dedupe forwarded and counted with the model.
func check(t *testing.T, c rueidis.Client, keys pipeline.Keys, id string, m *model) {
	t.Helper()
	got, _ := delivered(t, c, keys, id)
	for u, n := range got {
		if n != 1 {
			t.Errorf("user %d forwarded %d times", u, n)
		}
		if !m.reached[u] {
			t.Errorf("user %d forwarded but never reached", u)
		}
	}
	for u := range m.reached {
		if got[u] == 0 {
			t.Errorf("user %d reached but never forwarded", u)
		}
	}
	s := stats(t, c, keys, id)
	want := map[string]int64{
		pipeline.StatIn: m.in, pipeline.StatTargets: int64(len(m.reached)),
		pipeline.StatDups: m.sightings - int64(len(m.reached)), pipeline.StatMuted: m.mutedOnly(),
	}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("stat %s = %d, want %d", k, s[k], v)
		}
	}
}

func randomIDs(n int, from, span int64) []int64 {
	set := map[int64]bool{}
	for len(set) < n {
		set[from+rand.Int64N(span)] = true
	}
	out := make([]int64, 0, n)
	for id := range set {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// TestOverlapAndMutes feeds overlapping channels with mutes, dense and sparse
// ids (up to 10^12, and near the int64 limit where Lua's doubles would lose
// precision), in shuffled entries, and compares with the model.
func TestOverlapAndMutes(t *testing.T) {
	servers(t, func(t *testing.T, c rueidis.Client) {
		keys := newKeys()
		id := "c1"
		register(t, c, keys, id)
		runStage(t, c, keys, "d1")
		m := newModel()
		dense := randomIDs(20000, 1, 30000)
		sparse := randomIDs(3000, 1, 1_000_000_000_000)
		huge := randomIDs(500, 1<<62, 1<<60)
		all := slices.Concat(dense, sparse, huge)
		slices.Sort(all)
		// three channels: each reaches a random half, mutes a random tenth
		for range 3 {
			var u, mu []int64
			for _, x := range all {
				switch r := rand.IntN(20); {
				case r < 10:
					u = append(u, x)
				case r < 12:
					mu = append(mu, x)
				}
			}
			m.add(u, mu)
			emitEntries(t, c, keys, id, u, mu, 1000)
		}
		drained(t, c, keys)
		check(t, c, keys, id, m)
	})
}

// TestRedeliveryForwardsNothingNew replays the same entries, as resolve
// does when it reads a range again: the second pass only counts repeats,
// and each reading's ids read are counted apart, reached and muted
// (progress waits for the reading resolve recorded, not for a sum).
func TestRedeliveryForwardsNothingNew(t *testing.T) {
	servers(t, func(t *testing.T, c rueidis.Client) {
		keys := newKeys()
		id := "c2"
		register(t, c, keys, id)
		runStage(t, c, keys, "d1")
		ids := randomIDs(5000, 1, 8000)
		muted := []int64{9001, 9002, 9003}
		m := newModel()
		var entries [2]int
		readings := []string{"first", "again"}
		for pass, reading := range readings {
			m.add(ids, muted)
			emitReading(t, c, keys, id, "ch/0", reading, ids, muted, 700)
			drained(t, c, keys)
			_, entries[pass] = delivered(t, c, keys, id)
		}
		check(t, c, keys, id, m)
		if entries[0] == 0 || entries[1] != entries[0] {
			t.Fatalf("deliver entries after each pass: %v; the replay must add none", entries)
		}
		s := stats(t, c, keys, id)
		if s[pipeline.StatInReadings] != s[pipeline.StatIn] {
			t.Errorf("ids read with a reading %d of %d: every one came with one", s[pipeline.StatInReadings], s[pipeline.StatIn])
		}
		for _, reading := range readings {
			if n := s[pipeline.ReadField("ch/0", reading)]; n != int64(len(ids)+len(muted)) {
				t.Errorf("ids read of reading %q: %d, want %d", reading, n, len(ids)+len(muted))
			}
		}
	})
}

// A direct message cannot be canceled: dedupe forwards it without watching
// its cancel flag (the watcher reads every flag it watches each
// campaign.CancelPoll for a minute: at 200 messages a second, 60,000 reads a
// second per process), and watches a campaign's.
func TestMessagesAreNotWatchedForCancels(t *testing.T) {
	c, err := pipeline.NewRedis(env.Redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	keys := newKeys()
	register(t, c, keys, "m1")
	register(t, c, keys, "c1")
	h := dedupe.New(dedupe.Config{Redis: c, Keys: keys, Log: zerolog.Nop()})
	runHandler(t, c, keys, "d1", h)
	message := pipeline.DedupeEntry{Campaign: "m1", Range: pipeline.MessageRange, Users: []int64{3, 70_000, 900_000}}
	if _, err := pipeline.Emit(t.Context(), c, pipeline.Message{Stream: keys.Stream(pipeline.StreamDedupe, keys.HashPartition("m1")), Fields: message.Fields()}); err != nil {
		t.Fatal(err)
	}
	emitEntries(t, c, keys, "c1", []int64{5, 6}, nil, 10)
	drained(t, c, keys)
	forwarded := 0
	for p := range keys.Partitions {
		xs, err := c.Do(t.Context(), c.B().Xrange().Key(keys.Stream(pipeline.StreamDeliver, p)).Start("-").End("+").Build()).AsXRange()
		if err != nil {
			t.Fatal(err)
		}
		forwarded += len(xs)
	}
	if forwarded != 2 {
		t.Fatalf("%d deliver entries, want 2 (the message's, the campaign's)", forwarded)
	}
	if n := dedupe.Watching(h); n != 1 {
		t.Errorf("dedupe watches %d cancel flags, want 1: the campaign's, not the message's", n)
	}
	// A message's counters are kept a day past its expiry (an hour from
	// now), a campaign's a week: a chat app's millions a day held a week
	// of counters nobody reads.
	for _, tt := range []struct {
		key      string
		min, max time.Duration
	}{
		{keys.Stats(keys.HashPartition("m1"), "m1"), campaign.KeepMessageCounters, campaign.KeepMessageCounters + time.Hour},
		{keys.Stats(keys.UserPartition(5), "c1"), campaign.KeepCounters, campaign.KeepCounters + time.Hour},
	} {
		ms, err := c.Do(t.Context(), c.B().Pttl().Key(tt.key).Build()).AsInt64()
		if ttl := time.Duration(ms) * time.Millisecond; err != nil || ttl <= tt.min || ttl > tt.max {
			t.Errorf("%s expires in %v (%v), want between %v and %v", tt.key, ttl, err, tt.min, tt.max)
		}
	}
}

// TestMarksMemory: dense marks cost about a bit per user, far under
// DESIGN's 16 MB per 10M-user campaign.
func TestMarksMemory(t *testing.T) {
	c, err := pipeline.NewRedis(env.Redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	keys := newKeys()
	id := "mem"
	register(t, c, keys, id)
	runStage(t, c, keys, "d1")
	const n = 1_000_000
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	emitEntries(t, c, keys, id, ids, nil, 2000)
	drained(t, c, keys)
	var bytes int64
	for p := range keys.Partitions {
		b, err := c.Do(context.Background(), c.B().MemoryUsage().Key(keys.Seen(p, id)).Samples(0).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		bytes += b
	}
	// register set the campaign to expire in an hour: marks go an hour
	// after that (campaign.MarkMargin), counters a week after.
	for _, k := range []struct {
		key      string
		from, to time.Duration
	}{{keys.Seen(0, id), time.Hour, 2 * time.Hour}, {keys.Stats(0, id), 7 * 24 * time.Hour, 8 * 24 * time.Hour}} {
		ttl, err := c.Do(context.Background(), c.B().Pttl().Key(k.key).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Duration(ttl) * time.Millisecond; d <= k.from || d > k.to {
			t.Errorf("%s expires in %s, want between %s and %s", k.key, d, k.from, k.to)
		}
	}
	perTenMillion := bytes * (10_000_000 / n)
	t.Logf("marks of %d dense users: %d bytes (%.2f bits/user; %.1f MB per 10M)", n, bytes, float64(bytes*8)/n, float64(perTenMillion)/1e6)
	if perTenMillion > 16<<20 {
		t.Fatalf("marks would take %d bytes per 10M users, over 16 MB", perTenMillion)
	}
}

func TestMalformedEntriesAreDeadLettered(t *testing.T) {
	c, err := pipeline.NewRedis(env.Redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	keys := newKeys()
	register(t, c, keys, "ok")
	ctx := context.Background()
	p := 3
	bucketInP := int64(p) * keys.Bucket // a user of partition p
	stream := keys.Stream(pipeline.StreamDedupe, p)
	bad := [][]string{
		{pipeline.FieldCampaign, "ok", pipeline.FieldUsers, "\xff\xff"},
		{pipeline.FieldCampaign, "ok", pipeline.FieldUsers, pipeline.EncodeIDs([]int64{bucketInP + 5, bucketInP + 5})},
		{pipeline.FieldCampaign, "ok", pipeline.FieldUsers, pipeline.EncodeIDs([]int64{-4})},
		{pipeline.FieldCampaign, "{bad}", pipeline.FieldUsers, pipeline.EncodeIDs([]int64{bucketInP})},
		{pipeline.FieldCampaign, "never-created", pipeline.FieldUsers, pipeline.EncodeIDs([]int64{bucketInP})},
		{pipeline.FieldCampaign, "ok"},
	}
	var msgs []pipeline.Message
	for i, f := range bad {
		msgs = append(msgs, pipeline.Message{Stream: stream, Fields: f})
		if i == 2 {
			msgs = append(msgs, pipeline.Message{Stream: stream, Fields: []string{
				pipeline.FieldCampaign, "ok", pipeline.FieldUsers, pipeline.EncodeIDs([]int64{bucketInP + 1, bucketInP + 2})}})
		}
	}
	if _, err := pipeline.Emit(ctx, c, msgs...); err != nil {
		t.Fatal(err)
	}
	runStage(t, c, keys, "d1")
	drained(t, c, keys)
	got, _ := delivered(t, c, keys, "ok")
	if len(got) != 2 || got[bucketInP+1] != 1 || got[bucketInP+2] != 1 {
		t.Fatalf("delivered %v, want the two good users once", got)
	}
	dlq, err := c.Do(ctx, c.B().Xlen().Key(keys.DLQ()).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	if dlq != int64(len(bad)) {
		t.Fatalf("%d dead letters, want %d", dlq, len(bad))
	}
	// All but never-created's are the entry's own fault, marked so that
	// `dlq retry` says they will be back; a campaign may yet be created.
	letters, err := pipeline.NewDLQ(c, keys).List(ctx, pipeline.DLQFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range letters {
		if d.BadInput != (d.Fields[pipeline.FieldCampaign] != "never-created") {
			t.Errorf("dead letter of %v (%s): bad input %v", d.Fields, d.Error, d.BadInput)
		}
	}
}
func TestForceForwardsAgain(t *testing.T) {
	c, err := pipeline.NewRedis(env.Redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	keys := newKeys()
	register(t, c, keys, "f")
	stream := keys.Stream(pipeline.StreamDedupe, 0)
	u := pipeline.EncodeIDs([]int64{1, 2, 3})
	for _, force := range []string{"", "1"} {
		f := []string{pipeline.FieldCampaign, "f", pipeline.FieldUsers, u}
		if force != "" {
			f = append(f, pipeline.FieldForce, force)
		}
		for range 2 {
			if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: stream, Fields: f}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Started after the four entries are in: they are read as one batch, in
	// order. (Batches of a partition may be handled concurrently; which copy
	// of a user is "first" is then the commit order, and a forced copy
	// committed first would make the plain one a repeat.)
	runStage(t, c, keys, "d1")
	drained(t, c, keys)
	xs, err := c.Do(ctx, c.B().Xrange().Key(keys.Stream(pipeline.StreamDeliver, 0)).Start("-").End("+").Build()).AsXRange()
	if err != nil {
		t.Fatal(err)
	}
	var forced, plain int
	for _, x := range xs {
		if x.FieldValues[pipeline.FieldUsers] != u {
			t.Fatalf("entry %v", x.FieldValues)
		}
		if x.FieldValues[pipeline.FieldForce] == "1" {
			forced++
		} else {
			plain++
		}
	}
	if plain != 1 || forced != 2 {
		t.Fatalf("plain %d forced %d, want 1 and 2", plain, forced)
	}
	if s := stats(t, c, keys, "f"); s[pipeline.StatTargets] != 3 || s[pipeline.StatDups] != 3 {
		t.Fatalf("stats %v", s)
	}
}

// TestMessageExpiryRidesItsEntry: a message is a campaign dedupe meets
// once, so reading its expiry from the campaign's hash was a Redis round
// trip before every message's commit (#15). The API writes the expiry into
// the message's entries and dedupe takes it from there: an entry carrying
// it is forwarded, its marks and counters expiring by it, without its hash
// being read at all (here it does not exist). An entry without it is read
// as before: a campaign unknown in Redis is dead-lettered.
func TestMessageExpiryRidesItsEntry(t *testing.T) {
	t.Parallel()
	servers(t, func(t *testing.T, c rueidis.Client) {
		keys := newKeys()
		exp := time.Now().Add(2 * time.Hour).UnixMilli()
		tests := []struct {
			give     pipeline.DedupeEntry
			wantSent int // users forwarded
		}{
			{give: pipeline.DedupeEntry{Campaign: "m-carried", Range: pipeline.MessageRange, Users: []int64{3, 70_000}, ExpiresMs: exp}, wantSent: 2},
			{give: pipeline.DedupeEntry{Campaign: "m-bare", Range: pipeline.MessageRange, Users: []int64{4}}, wantSent: 0},
		}
		for _, tt := range tests {
			p := keys.HashPartition(tt.give.Campaign)
			if _, err := pipeline.Emit(t.Context(), c, pipeline.Message{Stream: keys.Stream(pipeline.StreamDedupe, p), Fields: tt.give.Fields()}); err != nil {
				t.Fatal(err)
			}
		}
		runStage(t, c, keys, "d1")
		drained(t, c, keys)
		for _, tt := range tests {
			id := tt.give.Campaign
			n := 0
			xs, err := c.Do(t.Context(), c.B().Xrange().Key(keys.Stream(pipeline.StreamDeliver, keys.HashPartition(id))).Start("-").End("+").Build()).AsXRange()
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range xs {
				if e, err := pipeline.ParseDeliverEntry(x.FieldValues); err == nil && e.Campaign == id {
					n += len(e.Users)
				}
			}
			if n != tt.wantSent {
				t.Errorf("%s: %d users forwarded, want %d", id, n, tt.wantSent)
			}
		}
		// The carried expiry sets the marks' and counters' (to the
		// second: PEXPIRETIME is exact, the clocks are the same).
		p := keys.HashPartition("m-carried")
		for _, tt := range []struct {
			key  string
			want int64
		}{
			{keys.Seen(p, "m-carried"), campaign.MarksExpireMs(exp)},
			{keys.Stats(p, "m-carried"), campaign.MessageCountersExpireMs(exp)},
		} {
			got, err := c.Do(t.Context(), c.B().Pexpiretime().Key(tt.key).Build()).AsInt64()
			if err != nil || got != tt.want {
				t.Errorf("%s expires at %d (%v), want %d (the entry's expiry)", tt.key, got, err, tt.want)
			}
		}
		letters, err := pipeline.NewDLQ(c, keys).List(t.Context(), pipeline.DLQFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(letters) != 1 || letters[0].Fields[pipeline.FieldCampaign] != "m-bare" || !strings.Contains(letters[0].Error, "unknown in Redis") {
			t.Errorf("dead letters %+v, want m-bare's alone (unknown in Redis)", letters)
		}
	})
}
