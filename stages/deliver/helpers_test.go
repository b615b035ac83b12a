package deliver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/apns"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/fcm"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

var env *pipelinetest.Env

func TestMain(m *testing.M) {
	pipelinetest.Main(m, pipelinetest.EnvOptions{Redis: true, Postgres: true}, &env)
}

const testApp = "app1"

// fixture is one test's slice of the shared servers: its own key prefix and
// its own database.
type fixture struct {
	t     testing.TB
	ctx   context.Context
	rdb   rueidis.Client
	keys  pipeline.Keys
	db    *pgxpool.Pool
	dbURL string
}

// testKeysOnly is a key scheme for tests that need no servers.
func testKeysOnly() pipeline.Keys { return pipeline.NewKeys("t", 8) }

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureOn(t, env.Redis.Addr)
}

// newFixtureOn is newFixture on another Redis (a cluster: comma-separated).
func newFixtureOn(t testing.TB, redisAddr string) *fixture {
	t.Helper()
	ctx := t.Context()
	var b [6]byte
	rand.Read(b[:])
	keys := pipeline.NewKeys("t"+hex.EncodeToString(b[:]), 8)
	rdb, err := pipeline.NewRedis(redisAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	url := pipelinetest.MigratedDatabaseT(t, env.Postgres)
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return &fixture{t: t, ctx: ctx, rdb: rdb, keys: keys, db: db, dbURL: url}
}

// testDevice is a row of devices.
type testDevice struct {
	user     int64
	platform push.Platform
	token    string
}

// iosToken and androidToken are deterministic tokens per user and device
// number; the fake provider's fate of a token is a hash of it.
func iosToken(user int64, n int) string { return fmt.Sprintf("%062x%02x", user, n) }
func androidToken(user int64, n int) string {
	return fmt.Sprintf("fcm%d_%d:APA91b%040x", user, n, user)
}

// seedDevices gives users 1..n one device each, iOS for even ids and
// Android for odd ones (iOS only when androidToo is false), and every
// seventh user a second iOS device.
func (f *fixture) seedDevices(n int, androidToo bool) []testDevice {
	f.t.Helper()
	return f.seedPlatforms(n, func(u int64, i int) push.Platform {
		if i == 0 && androidToo && u%2 == 1 {
			return push.Android
		}
		return push.IOS
	})
}

// seedPlatforms seeds n users with a device each, and every seventh user a
// second one, on the platform platformOf(user, i) gives (i: 0 or 1).
func (f *fixture) seedPlatforms(n int, platformOf func(u int64, i int) push.Platform) []testDevice {
	f.t.Helper()
	var out []testDevice
	add := func(u int64, i int) {
		if p := platformOf(u, i); p == push.Android {
			out = append(out, testDevice{u, p, androidToken(u, i)})
		} else {
			out = append(out, testDevice{u, p, iosToken(u, i)})
		}
	}
	for u := int64(1); u <= int64(n); u++ {
		add(u, 0)
		if u%7 == 0 {
			add(u, 1)
		}
	}
	f.insertDevices(out)
	return out
}

func (f *fixture) insertDevices(ds []testDevice) {
	f.t.Helper()
	// Registered a while before the campaign: APNs's 410 timestamp has
	// whole seconds (apns2 truncates it), and ingest applies an
	// invalidation only to a device registered before it.
	now := time.Now().Add(-time.Hour)
	rows := make([][]any, len(ds))
	for i, d := range ds {
		code := int16(devices.IOS)
		if d.platform == push.Android {
			code = int16(devices.Android)
		}
		rows[i] = []any{testApp, d.token, d.user, code, "en", int16(0), now}
	}
	_, err := f.db.CopyFrom(f.ctx, pgx.Identifier{"devices"},
		[]string{"app", "token", "user_id", "platform", "locale", "state", "event_at"}, pgx.CopyFromRows(rows))
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) createCampaign(id, data string) {
	f.t.Helper()
	_, err := f.db.Exec(f.ctx, `INSERT INTO campaigns (id, app, channels, category, title, body, data, ttl_seconds, state)
		VALUES ($1, $2, '{news}', 'promo', 'Hello', 'World', $3, 3600, 'running')`, id, testApp, data)
	if err != nil {
		f.t.Fatal(err)
	}
}

// emitUsers writes deliver entries for users as dedupe would: grouped by
// partition, sorted, up to 500 per entry.
func (f *fixture) emitUsers(campaign string, users []int64) {
	f.t.Helper()
	f.emitEvery(campaign, users, 500)
}

// emitEvery is emitUsers with up to per users an entry: small entries make
// a long stream of a few thousand users.
func (f *fixture) emitEvery(campaign string, users []int64, per int) {
	f.t.Helper()
	byPart := map[int][]int64{}
	for _, u := range users {
		p := f.keys.UserPartition(u)
		byPart[p] = append(byPart[p], u)
	}
	var msgs []pipeline.Message
	for p, us := range byPart {
		slices.Sort(us)
		for chunk := range slices.Chunk(us, per) {
			msgs = append(msgs, pipeline.Message{Stream: f.keys.Stream(pipeline.StreamDeliver, p), Fields: []string{
				pipeline.FieldCampaign, campaign, pipeline.FieldUsers, pipeline.EncodeIDs(chunk)}})
		}
	}
	for chunk := range slices.Chunk(msgs, 200) {
		if _, err := pipeline.Emit(f.ctx, f.rdb, chunk...); err != nil {
			f.t.Fatal(err)
		}
	}
}

func userRange(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i + 1)
	}
	return out
}

// stats sums a campaign's deliver counters over the partitions.
func (f *fixture) stats(campaign string) map[string]int64 {
	f.t.Helper()
	cmds := make(rueidis.Commands, f.keys.Partitions)
	for p := range cmds {
		cmds[p] = f.rdb.B().Hgetall().Key(f.keys.Stats(p, campaign)).Build()
	}
	out := map[string]int64{}
	for _, res := range f.rdb.DoMulti(f.ctx, cmds...) {
		m, err := res.AsStrMap()
		if err != nil {
			f.t.Fatal(err)
		}
		for k, s := range m {
			if k == pipeline.StatDonePace {
				continue // readings, not a count (TestDonePaceReadings)
			}
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				f.t.Fatalf("stats field %s: %v", k, err)
			}
			switch k {
			case pipeline.StatFirstMs:
				if out[k] == 0 || v < out[k] {
					out[k] = v
				}
			case pipeline.StatLastMs, pipeline.StatDoneMs:
				out[k] = max(out[k], v)
			default:
				out[k] += v
			}
		}
	}
	return out
}

// waitDone polls until every user of the campaign is terminal.
func (f *fixture) waitDone(campaign string, users int, timeout time.Duration) map[string]int64 {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := f.stats(campaign)
		if s[pipeline.StatUsersDone] >= int64(users) {
			return s
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("campaign %s not done after %v: %v", campaign, timeout, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitDrained waits until the deliver stream's every entry was read and
// acked.
func (f *fixture) waitDrained() { f.t.Helper(); f.waitStreamDrained(pipeline.StreamDeliver) }

// waitStreamDrained waits until every entry of stream's partitions was
// read and acked.
func (f *fixture) waitStreamDrained(stream string) {
	f.t.Helper()
	pipelinetest.Eventually(f.t, 30*time.Second, "every entry of "+stream+" read and acked", func() bool {
		groups, err := pipeline.StreamGroups(f.ctx, f.rdb, f.keys.Streams(stream))
		if err != nil {
			f.t.Fatal(err)
		}
		for _, gs := range groups {
			for _, g := range gs {
				if g.Pending != 0 || g.Lag != 0 {
					return false
				}
			}
		}
		return true
	})
}

// retriesLeft counts the retries waiting in every partition's delayed set.
func (f *fixture) retriesLeft() int64 {
	f.t.Helper()
	var n int64
	for p := range f.keys.Partitions {
		c, err := f.rdb.Do(f.ctx, f.rdb.B().Zcard().Key(pipeline.DelayedKey(f.keys.Stream(pipeline.StreamDeliver, p))).Build()).AsInt64()
		if err != nil {
			f.t.Fatal(err)
		}
		n += c
	}
	return n
}

// pendingEntries counts deliver entries read but not acked.
func (f *fixture) pendingEntries() int64 {
	f.t.Helper()
	groups, err := pipeline.StreamGroups(f.ctx, f.rdb, f.keys.Streams(pipeline.StreamDeliver))
	if err != nil {
		f.t.Fatal(err)
	}
	var n int64
	for _, gs := range groups {
		for _, g := range gs {
			n += g.Pending
		}
	}
	return n
}

// deliveries reads how many deliveries each pending entry of deliver's
// streams has counted (XPENDING's times-delivered), by stream and id.
func (f *fixture) deliveries() map[string]int64 {
	f.t.Helper()
	streams := f.keys.Streams(pipeline.StreamDeliver)
	groups, err := pipeline.StreamGroups(f.ctx, f.rdb, streams)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]int64{}
	for i, gs := range groups {
		for _, g := range gs {
			xs, err := f.rdb.Do(f.ctx, f.rdb.B().Xpending().Key(streams[i]).Group(g.Name).Start("-").End("+").Count(1<<20).Build()).ToArray()
			if err != nil {
				f.t.Fatal(err)
			}
			for _, x := range xs {
				e, err := x.ToArray()
				if err != nil || len(e) < 4 {
					f.t.Fatalf("xpending %s: %v %v", streams[i], e, err)
				}
				id, _ := e[0].ToString()
				n, _ := e[3].AsInt64()
				out[streams[i]+"/"+id] = n
			}
		}
	}
	return out
}

// invalidations reads every invalidation event deliver wrote to ingest.
func (f *fixture) invalidations() map[string]map[string]string {
	f.t.Helper()
	out := map[string]map[string]string{}
	for _, s := range f.keys.Streams(pipeline.StreamIngest) {
		xs, err := f.rdb.Do(f.ctx, f.rdb.B().Xrange().Key(s).Start("-").End("+").Build()).AsXRange()
		if err != nil {
			f.t.Fatal(err)
		}
		for _, x := range xs {
			if x.FieldValues[pipeline.FieldOp] != pipeline.OpInvalidate {
				continue
			}
			if _, dup := out[x.FieldValues[pipeline.FieldToken]]; dup {
				f.t.Logf("token invalidated twice: %s", x.FieldValues[pipeline.FieldToken])
			}
			out[x.FieldValues[pipeline.FieldToken]] = x.FieldValues
		}
	}
	return out
}

// dlq reads the dead-letter stream.
func (f *fixture) dlq() []map[string]string {
	f.t.Helper()
	xs, err := f.rdb.Do(f.ctx, f.rdb.B().Xrange().Key(f.keys.DLQ()).Start("-").End("+").Build()).AsXRange()
	if err != nil && !rueidis.IsRedisNil(err) {
		f.t.Fatal(err)
	}
	out := make([]map[string]string, len(xs))
	for i, x := range xs {
		out[i] = x.FieldValues
	}
	return out
}

// results is every result event in the results streams, in each
// partition's order.
func (f *fixture) results() []pipeline.ResultEvent {
	f.t.Helper()
	var out []pipeline.ResultEvent
	for _, stream := range f.keys.Streams(pipeline.StreamResults) {
		xs, err := f.rdb.Do(f.ctx, f.rdb.B().Xrange().Key(stream).Start("-").End("+").Build()).AsXRange()
		if err != nil && !rueidis.IsRedisNil(err) {
			f.t.Fatal(err)
		}
		for _, x := range xs {
			evs, err := pipeline.ParseResults(x.FieldValues)
			if err != nil {
				f.t.Fatal(err)
			}
			out = append(out, evs...)
		}
	}
	return out
}

// testTopic is testApp's bundle id: `deliver --apns-topic testTopic`
// serves testApp alone (the single-app flags serve the app whose id is
// --apns-topic).
const testTopic = testApp

// apnsSender is a token-auth APNs sender that trusts fake.
func apnsSender(t testing.TB, fake *fakeprovider.Server) push.Sender {
	t.Helper()
	return apnsSenderConns(t, fake, 0)
}

// apnsSenderConns is apnsSender over conns HTTP/2 connections (0: default).
func apnsSenderConns(t testing.TB, fake *fakeprovider.Server, conns int) push.Sender {
	t.Helper()
	s, err := apns.New(apns.Config{
		KeyFile: fakeprovider.WriteP8(t), KeyID: "KEYID12345", TeamID: "TEAMID1234",
		Topic: testTopic, Host: fake.URL(), RootCAs: fake.CertPool(), Conns: conns,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// fcmSender is an unauthenticated FCM sender for fake's endpoint.
func fcmSender(t testing.TB, fake *fakeprovider.Server) push.Sender {
	t.Helper()
	s, err := fcm.New(t.Context(), fcm.Config{Project: "test-project", Endpoint: fake.URL() + "/v1", RootCAs: fake.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// stage is an in-process deliver stage: its runner and handler.
type stage struct {
	h      *Handler
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// startStage runs deliver in this process until the test ends (or stop).
func (f *fixture) startStage(cfg Config, consumer string, claimIdle time.Duration) *stage {
	f.t.Helper()
	return f.startStageWith(cfg, pipeline.Options{
		Stage: "deliver", Stream: pipeline.StreamDeliver, Consumer: consumer,
		Concurrency: 4, BatchSize: 4, Block: 200 * time.Millisecond, ClaimIdle: claimIdle,
		ShutdownTimeout: 5 * time.Second,
	})
}

// startStageWith is startStage under the runner options opts.
func (f *fixture) startStageWith(cfg Config, opts pipeline.Options) *stage {
	f.t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(f.t)).Level(zerolog.WarnLevel)
	var h *Handler
	r := pipeline.NewRunner(f.rdb, f.keys, opts,
		pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error { return h.Handle(ctx, b) }), log, nil)
	cfg.Redis, cfg.DB, cfg.Keys = f.rdb, f.db, f.keys
	cfg.Log = log
	h, err := New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(f.ctx))
	s := &stage{h: h, cancel: cancel}
	s.done.Go(func() { r.Run(ctx) })
	f.t.Cleanup(s.stop)
	return s
}

func (s *stage) stop() {
	s.cancel()
	s.done.Wait()
}
