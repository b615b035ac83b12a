package deliver

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

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
	f.createMessage("msg-1")

	calls := &pipelinetest.RoundTrips{}
	db := pipelinetest.TracedPool(t, f.dbURL, calls)
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
		before := calls.N.Load()
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
		if got := calls.N.Load() - before; got != tt.wantCalls {
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

// monitorKey watches Redis (MONITOR, on a connection of its own) for
// commands naming key, and closes the returned channel at the first one.
func monitorKey(t *testing.T, addr, key string) <-chan struct{} {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("MONITOR: %q, %v", line, err)
	}
	seen := make(chan struct{})
	quoted := strconv.Quote(key) // MONITOR quotes every argument
	go func() {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return // the test ended
			}
			if strings.Contains(line, quoted) {
				close(seen)
				io.Copy(io.Discard, r) // keep the server's buffer for us empty
				return
			}
		}
	}()
	return seen
}

// batchGate holds PostgreSQL batches at their start until open is closed
// (at most 10 s), and counts those that started before it was.
type batchGate struct {
	pipelinetest.RoundTrips
	open         <-chan struct{}
	before, held atomic.Int64
}

func (g *batchGate) TraceBatchStart(ctx context.Context, c *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	g.held.Add(1)
	select {
	case <-g.open:
	case <-time.After(10 * time.Second):
		g.before.Add(1)
	}
	return g.RoundTrips.TraceBatchStart(ctx, c, d)
}

// A message's first batch reads its row and tokens from PostgreSQL, and
// its sent marks from Redis (skipDone): read after the row, the marks were
// a second wait before the first send (#15, on a busy machine p99 44 ms of
// Redis after 111 ms of PostgreSQL). They are read at the same time now:
// here PostgreSQL's batch is held until Redis has seen the marks' key read,
// which on the old code came only after that batch, 10 s later. Each
// device still gets the message once, and a device marked sent before the
// batch (a redelivered message's) is not sent again.
func TestMessageMarksReadBesideItsRow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	devs := f.seedDevices(12, true)
	f.createMessage("msg-2")
	const p = 5
	gate := &batchGate{}
	db := pipelinetest.TracedPool(t, f.dbURL, gate)
	// The first device, by id, was sent before: its mark is in.
	var first int64
	if err := db.QueryRow(f.ctx, `SELECT min(id) FROM devices`).Scan(&first); err != nil {
		t.Fatal(err)
	}
	// Its field is its chunk; the value, the chunk's bytes up to its bit
	// (most significant first, as SETBIT numbers them).
	chunk, off := first>>pipeline.MessageMarkBits, first&(1<<pipeline.MessageMarkBits-1)
	b := make([]byte, off/8+1)
	b[off/8] = 0x80 >> (off % 8)
	mark := string(b)
	if err := f.rdb.Do(f.ctx, f.rdb.B().Hset().Key(f.keys.SentMarks(p, "msg-2")).FieldValue().
		FieldValue(strconv.FormatInt(chunk, 10), mark).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	// Watched from here: every command naming the key is deliver's.
	gate.open = monitorKey(t, env.Redis.Addr, f.keys.SentMarks(p, "msg-2"))

	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
	h, err := New(Config{Redis: f.rdb, DB: db, Keys: f.keys, Log: log,
		Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake), push.Android: fcmSender(t, fake)}})
	if err != nil {
		t.Fatal(err)
	}
	r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "deliver", Stream: pipeline.StreamDeliver, Express: true,
		Concurrency: 1, BatchSize: 8, Block: 100 * time.Millisecond, ClaimIdle: time.Minute, ShutdownTimeout: 5 * time.Second}, h, log, nil)
	ctx, cancel := context.WithCancel(context.WithoutCancel(f.ctx))
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	pipelinetest.Eventually(t, 10*time.Second, "the runner reading", r.Ready)

	if _, err := pipeline.Emit(f.ctx, f.rdb, pipeline.Message{Stream: f.keys.Stream(pipeline.StreamDeliverExpress, p),
		Fields: pipeline.DeliverEntry{Campaign: "msg-2", Users: userRange(12)}.Fields()}); err != nil {
		t.Fatal(err)
	}
	want := len(devs) - 1
	pipelinetest.Eventually(t, 30*time.Second, "the message sent", func() bool { return len(fake.Receipts()) >= want })
	f.waitExpressDrained()
	if gate.held.Load() != 1 || gate.before.Load() != 0 {
		t.Errorf("%d of %d PostgreSQL batches went on without the message's sent marks being read meanwhile, want 0 of 1",
			gate.before.Load(), gate.held.Load())
	}
	got := map[string]int{}
	for _, rc := range fake.Receipts() {
		got[rc.Token]++
	}
	if len(fake.Receipts()) != want {
		t.Errorf("%d sends, want %d (every device but the one marked before)", len(fake.Receipts()), want)
	}
	var firstToken string
	if err := db.QueryRow(f.ctx, `SELECT token FROM devices WHERE id = $1`, first).Scan(&firstToken); err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		wantN := 1
		if d.token == firstToken {
			wantN = 0
		}
		if got[d.token] != wantN {
			t.Errorf("device %s of user %d got the message %d times, want %d", d.token, d.user, got[d.token], wantN)
		}
	}
}

// createMessage stores a direct message's row: a campaign's, of kind
// message and priority high, as the API writes it.
func (f *fixture) createMessage(id string) {
	f.t.Helper()
	f.createCampaign(id, "{}")
	if _, err := f.db.Exec(f.ctx, `UPDATE campaigns SET kind = 'message', priority = 'high' WHERE id = $1`, id); err != nil {
		f.t.Fatal(err)
	}
}
