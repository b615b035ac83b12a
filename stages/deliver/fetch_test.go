package deliver

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// pgCalls counts the calls a pool made to PostgreSQL: each query, and each
// batch of queries (pgx.Batch: one round trip for all of them).
type pgCalls struct{ n atomic.Int64 }

func (c *pgCalls) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *pgCalls) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *pgCalls) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *pgCalls) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *pgCalls) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// A direct message is a campaign of its own, so deliver meets every
// message's row for the first time with its batch, and learns the app
// whose tokens it needs only from the row. Read one after the other, the
// row and the tokens were two round trips to PostgreSQL before the first
// send, each a wait for PostgreSQL's turn on a busy machine (#15: most of
// what deliver's express wait measured at 60 messages/s × 50). Now they are
// one: the tokens' query takes the app from the row in the same batch. A
// message id with no row is still dead-lettered, and nothing is sent.
func TestMessageRowAndTokensInOneRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	devs := f.seedDevices(20, true) // 22 devices of both platforms
	f.createCampaign("msg-1", "{}")
	if _, err := f.db.Exec(f.ctx, `UPDATE campaigns SET kind = 'message', priority = 'high' WHERE id = 'msg-1'`); err != nil {
		t.Fatal(err)
	}

	calls := &pgCalls{}
	pcfg, err := pgxpool.ParseConfig(f.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	pcfg.ConnConfig.Tracer = calls
	db, err := pgxpool.NewWithConfig(f.ctx, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
	h, err := New(Config{Redis: f.rdb, DB: db, Keys: f.keys, Log: log,
		Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake), push.Android: fcmSender(t, fake)}})
	if err != nil {
		t.Fatal(err)
	}
	r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "deliver", Stream: pipeline.StreamDeliver, Express: true,
		Concurrency: 1, BatchSize: 8, Block: 100 * time.Millisecond, ClaimIdle: 10 * time.Second, ShutdownTimeout: 5 * time.Second}, h, log, nil)
	ctx, cancel := context.WithCancel(context.WithoutCancel(f.ctx))
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	pipelinetest.Eventually(t, 10*time.Second, "the runner reading", r.Ready)

	tests := []struct {
		name      string
		give      string // the entry's campaign id
		wantCalls int64
		wantSent  int
		wantDead  int
	}{
		{name: "a message's first batch", give: "msg-1", wantCalls: 1, wantSent: len(devs)},
		{name: "a message with no row", give: "msg-none", wantCalls: 1, wantDead: 1},
	}
	sent, dead := 0, 0
	for _, tt := range tests {
		// One entry, in one partition, as the API writes a message of a
		// few users (campaign.WholeMessageUsers).
		before := calls.n.Load()
		_, err := pipeline.Emit(f.ctx, f.rdb, pipeline.Message{Stream: f.keys.Stream(pipeline.StreamDeliverExpress, 3),
			Fields: pipeline.DeliverEntry{Campaign: tt.give, Users: userRange(20)}.Fields()})
		if err != nil {
			t.Fatal(err)
		}
		sent, dead = sent+tt.wantSent, dead+tt.wantDead
		pipelinetest.Eventually(t, 20*time.Second, tt.name+": sent and dead-lettered", func() bool {
			return len(fake.Receipts()) >= sent && len(f.dlq()) >= dead
		})
		f.waitExpressDrained()
		if got := calls.n.Load() - before; got != tt.wantCalls {
			t.Errorf("%s: %d calls to PostgreSQL, want %d (the row and its tokens in one round trip)", tt.name, got, tt.wantCalls)
		}
		if got := len(fake.Receipts()); got != sent {
			t.Errorf("%s: %d receipts in all, want %d", tt.name, got, sent)
		}
		if got := len(f.dlq()); got != dead {
			t.Errorf("%s: %d dead letters in all, want %d", tt.name, got, dead)
		}
	}
	byID := map[string]int{}
	for _, rc := range fake.Receipts() {
		byID[rc.Token+" "+rc.CollapseID]++
	}
	for _, d := range devs {
		if n := byID[d.token+" "+collapseID("msg-1")]; n != 1 {
			t.Errorf("device %s of user %d got the message %d times, want once", d.token, d.user, n)
		}
	}
}

// waitExpressDrained waits until the express deliver stream's every entry
// was read and acked.
func (f *fixture) waitExpressDrained() {
	f.t.Helper()
	f.waitStreamDrained(pipeline.StreamDeliverExpress)
}
