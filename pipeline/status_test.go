package pipeline_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// opsRead reads up to n new entries of key as consumer and returns their ids.
func opsRead(t *testing.T, c rueidis.Client, key, group, consumer string, n int64) []string {
	t.Helper()
	res, err := c.Do(context.Background(), c.B().Xreadgroup().Group(group, consumer).Count(n).
		Streams().Key(key).Id(">").Build()).AsXRead()
	if err != nil && !rueidis.IsRedisNil(err) {
		t.Fatal(err)
	}
	var ids []string
	for _, x := range res[key] {
		ids = append(ids, x.ID)
	}
	return ids
}

func opsDo(t *testing.T, c rueidis.Client, cmd rueidis.Completed) {
	t.Helper()
	if err := c.Do(context.Background(), cmd).Error(); err != nil {
		t.Fatal(err)
	}
}

// opsState builds: deliver p0 has 10 entries; group deliver: c1 read 4 and
// acked 1, c2 read 2 → pending 5, lag 4; group audit read nothing → lag 10.
// deliver p1 has 3 entries; c1 read and acked them all; c3 exists, idle.
func opsState(t *testing.T, c rueidis.Client, keys pipeline.Keys) (p0, p1 string) {
	t.Helper()
	ctx := t.Context()
	p0, p1 = keys.Stream(pipeline.StreamDeliver, 0), keys.Stream(pipeline.StreamDeliver, 1)
	for i := range 13 {
		key := p0
		if i >= 10 {
			key = p1
		}
		if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: key, Fields: []string{"n", "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{p0, p1} {
		if err := pipeline.CreateGroup(ctx, c, k, "deliver"); err != nil {
			t.Fatal(err)
		}
	}
	if err := pipeline.CreateGroup(ctx, c, p0, "audit"); err != nil {
		t.Fatal(err)
	}
	read := opsRead(t, c, p0, "deliver", "c1", 4)
	opsDo(t, c, c.B().Xack().Key(p0).Group("deliver").Id(read[0]).Build())
	opsRead(t, c, p0, "deliver", "c2", 2)
	read = opsRead(t, c, p1, "deliver", "c1", 10)
	opsDo(t, c, c.B().Xack().Key(p1).Group("deliver").Id(read...).Build())
	opsDo(t, c, c.B().XgroupCreateconsumer().Key(p1).Group("deliver").Consumer("c3").Build())
	return p0, p1
}

func TestStatusMatchesTheConstructedState(t *testing.T) {
	c, keys := opsRedis(t)
	opsState(t, c, keys)
	st, err := pipeline.Status(t.Context(), c, keys, pipeline.StreamDedupe, pipeline.StreamDeliver)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Name != pipeline.StreamDedupe || st[1].Name != pipeline.StreamDeliver {
		t.Fatalf("streams %+v", st)
	}
	if st[0].Length != 0 || len(st[0].Groups) != 0 || len(st[0].Partitions) != keys.Partitions {
		t.Errorf("empty dedupe: %+v", st[0])
	}
	d := st[1]
	if d.Length != 13 {
		t.Errorf("deliver length %d, want 13", d.Length)
	}
	if len(d.Groups) != 2 {
		t.Fatalf("deliver groups %+v", d.Groups)
	}
	audit, dg := d.Groups[0], d.Groups[1]
	if audit.Name != "audit" || audit.Lag != 10 || audit.Pending != 0 || audit.Consumers != 0 || audit.LagUnknown != 0 {
		t.Errorf("audit total %+v, want lag 10", audit)
	}
	if dg.Name != "deliver" || dg.Lag != 4 || dg.Pending != 5 || dg.Consumers != 3 || dg.LagUnknown != 0 {
		t.Errorf("deliver total %+v, want lag 4, pending 5, 3 consumers", dg)
	}
	p0 := d.Partitions[0]
	if p0.Length != 10 || len(p0.Groups) != 2 {
		t.Fatalf("p0 %+v", p0)
	}
	g := p0.Groups[1]
	if g.Name != "deliver" || g.Lag != 4 || g.Pending != 5 || len(g.Consumers) != 2 {
		t.Fatalf("p0 deliver %+v", g)
	}
	pending := map[string]int64{}
	for _, cs := range g.Consumers {
		pending[cs.Name] = cs.Pending
		if cs.Idle < 0 || cs.Idle > time.Minute {
			t.Errorf("consumer %s idle %v", cs.Name, cs.Idle)
		}
	}
	if pending["c1"] != 3 || pending["c2"] != 2 {
		t.Errorf("p0 consumers' pending %v, want c1=3 c2=2", pending)
	}
	p1 := d.Partitions[1]
	if p1.Length != 3 || len(p1.Groups) != 1 || p1.Groups[0].Lag != 0 || p1.Groups[0].Pending != 0 || len(p1.Groups[0].Consumers) != 2 {
		t.Errorf("p1 %+v", p1)
	}
	for _, p := range d.Partitions[2:] {
		if p.Length != 0 || len(p.Groups) != 0 {
			t.Errorf("partition %d not empty: %+v", p.Partition, p)
		}
	}
}

func TestRemoveIdleConsumersKeepsThoseWithPending(t *testing.T) {
	c, keys := opsRedis(t)
	ctx := t.Context()
	p0, p1 := opsState(t, c, keys)

	removed, err := pipeline.RemoveIdleConsumers(ctx, c, keys, time.Hour, pipeline.StreamDeliver)
	if err != nil || len(removed) != 0 {
		t.Fatalf("idle limit 1h removed %v, %v", removed, err)
	}
	// Limit 0: every consumer counts as idle; only those without pending go.
	removed, err = pipeline.RemoveIdleConsumers(ctx, c, keys, 0, pipeline.StreamDeliver)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range removed {
		got = append(got, r.Stream+"/"+r.Group+"/"+r.Consumer)
	}
	slices.Sort(got)
	if want := []string{p1 + "/deliver/c1", p1 + "/deliver/c3"}; !slices.Equal(got, want) {
		t.Fatalf("removed %v, want %v", got, want)
	}
	st, err := pipeline.Status(ctx, c, keys, pipeline.StreamDeliver)
	if err != nil {
		t.Fatal(err)
	}
	g := st[0].Partitions[0].Groups[1]
	if g.Pending != 5 || len(g.Consumers) != 2 {
		t.Fatalf("p0 after cleanup: pending %d, consumers %+v; want 5 pending on c1 and c2", g.Pending, g.Consumers)
	}
	if len(st[0].Partitions[1].Groups[0].Consumers) != 0 {
		t.Fatalf("p1 still has consumers %+v", st[0].Partitions[1].Groups[0].Consumers)
	}

	// The check is atomic with the delete: a consumer that read an entry
	// after status saw it empty is kept.
	opsDo(t, c, c.B().XgroupCreateconsumer().Key(p0).Group("audit").Consumer("late").Build())
	opsRead(t, c, p0, "audit", "late", 1)
	ok, err := pipeline.RemoveConsumerIfIdle(ctx, c, p0, "audit", "late", 0)
	if err != nil || ok {
		t.Fatalf("removed a consumer holding a pending entry: %v, %v", ok, err)
	}
	opsDo(t, c, c.B().XgroupCreateconsumer().Key(p0).Group("audit").Consumer("fresh").Build())
	if ok, err := pipeline.RemoveConsumerIfIdle(ctx, c, p0, "audit", "fresh", time.Hour); err != nil || ok {
		t.Fatalf("removed a consumer idle for less than the limit: %v, %v", ok, err)
	}
	if ok, err := pipeline.RemoveConsumerIfIdle(ctx, c, p0, "audit", "fresh", 0); err != nil || !ok {
		t.Fatalf("kept an idle consumer without pending: %v, %v", ok, err)
	}
}

// The operator tools on a 3-master cluster with 16 partitions: status reads
// every partition in pipelined calls across nodes, replay writes each entry
// back to its own partition (never CROSSSLOT), the consumer cleanup script
// runs on the key's node, and the DLQ round-trips.
func TestOpsOnCluster(t *testing.T) {
	c, err := pipeline.NewRedis(strings.Join(env.Cluster.Addrs, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := t.Context()
	keys := pipeline.NewKeys("t"+strconv.FormatUint(rand.Uint64(), 36), 16)
	for i := range 64 {
		p := i % keys.Partitions
		if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.Stream(pipeline.StreamDeliver, p),
			Fields: []string{pipeline.FieldCampaign, "c", "n", strconv.Itoa(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range keys.Streams(pipeline.StreamDeliver) {
		if err := pipeline.CreateGroup(ctx, c, k, "deliver"); err != nil {
			t.Fatal(err)
		}
		opsRead(t, c, k, "deliver", "w1", 1)
	}
	st, err := pipeline.Status(ctx, c, keys, pipeline.StreamDeliver)
	if err != nil {
		t.Fatal(err)
	}
	if g := st[0].Groups[0]; st[0].Length != 64 || g.Lag != 48 || g.Pending != 16 || g.Consumers != 1 {
		t.Fatalf("status: length %d, %+v; want 64, lag 48, pending 16, 1 consumer", st[0].Length, g)
	}
	// deliver finishes all but w1's first entry of each partition: replay
	// re-injects only what deliver finished, and leaves it the one it holds.
	for _, k := range keys.Streams(pipeline.StreamDeliver) {
		opsDo(t, c, c.B().Xack().Key(k).Group("deliver").Id(opsRead(t, c, k, "deliver", "w1", 3)...).Build())
	}
	res, err := pipeline.Replay(ctx, c, keys, pipeline.ReplayOptions{Stream: pipeline.StreamDeliver, Force: true})
	if err != nil || res.Injected != 48 || res.Unfinished != 16 {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	for p, n := range res.ByPart {
		if n != 3 {
			t.Errorf("partition %d got %d re-injected, want 3", p, n)
		}
	}
	// w1 holds one pending entry per partition: cleanup must keep it.
	if removed, err := pipeline.RemoveIdleConsumers(ctx, c, keys, 0, pipeline.StreamDeliver); err != nil || len(removed) != 0 {
		t.Fatalf("cleanup removed %v, %v", removed, err)
	}
	q := pipeline.NewDLQ(c, keys)
	u := pipeline.EncodeIDs([]int64{1 << 40})
	if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.DLQ(), Fields: []string{
		pipeline.DLQStream, keys.Stream(pipeline.StreamDeliver, 9), pipeline.DLQID, "1-0",
		pipeline.DLQFields, pipeline.EncodeDLQFields(map[string]string{pipeline.FieldCampaign: "c", pipeline.FieldUsers: u})}}); err != nil {
		t.Fatal(err)
	}
	if r, err := q.Retry(ctx, pipeline.DLQFilter{}); err != nil || len(r.Done) != 1 {
		t.Fatalf("dlq retry on a cluster: %+v, %v", r, err)
	}
	xs := opsRange(t, c, keys.Stream(pipeline.StreamDeliver, 9), "-")
	if last := xs[len(xs)-1]; last.FieldValues[pipeline.FieldUsers] != u {
		t.Fatalf("retried entry %+v", last)
	}
}

// A running stage on a stream nobody wrote to yet is listed with its
// consumer. Redis 7.0 creates a consumer only when a read hands it entries,
// so status showed a running stage's partitions with 0 consumers.
func TestQuietStageIsListed(t *testing.T) {
	c, keys := opsRedis(t)
	h := pipeline.HandlerFunc(func(context.Context, *pipeline.Batch) error { return nil })
	r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "deliver", Stream: pipeline.StreamDeliver, Consumer: "quiet",
		Partitions: []int{0, 2}, Block: 100 * time.Millisecond}, h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
	st, err := pipeline.Status(t.Context(), c, keys, pipeline.StreamDeliver)
	if err != nil {
		t.Fatal(err)
	}
	if g := st[0].Groups; len(g) != 1 || g[0].Name != "deliver" || g[0].Consumers != 1 {
		t.Fatalf("groups %+v, want deliver with its one consumer", g)
	}
	for _, p := range []int{0, 2} {
		g := st[0].Partitions[p].Groups
		if len(g) != 1 || len(g[0].Consumers) != 1 || g[0].Consumers[0].Name != "quiet" {
			t.Errorf("partition %d: groups %+v, want consumer quiet", p, g)
		}
	}
}
