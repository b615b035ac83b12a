package ingest_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// storyEvents is a random history of tokens: registrations, updates, moves
// between users, deletions, re-registrations and provider invalidations, with
// distinct event times, in an order shuffled within windows (so the stream
// holds many events older than ones before them).
func storyEvents(rng *rand.Rand, n, tokens int) []devices.Event {
	base := time.Now().Add(-time.Hour).UnixMicro()
	evs := make([]devices.Event, n)
	for i := range evs {
		tok := rng.IntN(tokens)
		e := devices.Event{App: "news", At: base + int64(i)}
		if tok%2 == 0 {
			e.Token, e.Platform = apnsToken(tok), devices.IOS
		} else {
			e.Token, e.Platform = fcmToken(tok), devices.Android
		}
		switch r := rng.Float64(); {
		case r < 0.75:
			e.Op, e.User, e.Locale = pipeline.OpPut, 1+rng.Int64N(int64(tokens)/2), []string{"en", "de", "pt-BR"}[rng.IntN(3)]
		case r < 0.9:
			e.Op, e.Platform = pipeline.OpDelete, 0
		default:
			e.Op = pipeline.OpInvalidate
		}
		evs[i] = e
	}
	for lo := 0; lo < n; lo += 2000 {
		w := evs[lo:min(lo+2000, n)]
		rng.Shuffle(len(w), func(i, j int) { w[i], w[j] = w[j], w[i] })
	}
	return evs
}

func emitEvents(t testing.TB, ctx context.Context, c rueidis.Client, keys pipeline.Keys, evs []devices.Event) {
	t.Helper()
	for lo := 0; lo < len(evs); lo += 1000 {
		msgs := make([]pipeline.Message, 0, 1000)
		for _, e := range evs[lo:min(lo+1000, len(evs))] {
			msgs = append(msgs, e.Message(keys))
		}
		if _, err := pipeline.Emit(ctx, c, msgs...); err != nil {
			t.Fatal(err)
		}
	}
}

// connSampler records the most PostgreSQL backends each application name
// held at once, sampling pg_stat_activity.
type connSampler struct {
	mu   sync.Mutex
	most map[string]int
	stop func()
}

func sampleConns(t testing.TB, db *pgxpool.Pool) *connSampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &connSampler{most: map[string]int{}}
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			rows, err := db.Query(ctx, `SELECT application_name, count(*) FROM pg_stat_activity
				WHERE application_name <> '' GROUP BY application_name`)
			if err == nil {
				for rows.Next() {
					var name string
					var n int
					if rows.Scan(&name, &n) == nil {
						s.mu.Lock()
						s.most[name] = max(s.most[name], n)
						s.mu.Unlock()
					}
				}
				rows.Close()
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	s.stop = func() { cancel(); wg.Wait() }
	t.Cleanup(s.stop)
	return s
}

func (s *connSampler) max(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.most[name]
}

// kill -9 of the ingest stage mid-batch, three times, each time with batches
// committed in PostgreSQL but not yet acknowledged in Redis: after a new
// process claimed and finished the rest, every accepted event is applied
// exactly as if it had been applied once, in order.
func TestSIGKILLMidBatchAppliesEveryEventOnce(t *testing.T) {
	ctx := context.Background()
	keys := testKeys()
	c := redisClient(t, env.Redis.Addr)
	url, db := testDB(t, 2)
	for _, s := range keys.Streams(pipeline.StreamIngest) {
		if err := pipeline.CreateGroup(ctx, c, s, "ingest"); err != nil {
			t.Fatal(err)
		}
	}
	evs := storyEvents(rand.New(rand.NewPCG(1, 2)), 40_000, 8_000)
	emitEvents(t, ctx, c, keys, evs)
	want := model{}
	want.apply(evs...) // distinct times: the final state does not depend on batching

	conns := sampleConns(t, db)
	cfg := childConfig{Redis: env.Redis.Addr, DB: url, Prefix: keys.Prefix, DBConns: 2, Batch: 300, Concurrency: 4,
		ClaimIdle: 500 * time.Millisecond, Pause: 40 * time.Millisecond}
	rowCount := func() int {
		var n int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM devices`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for k := range 3 {
		cfg.Consumer, cfg.AppName = "victim"+strconv.Itoa(k), "ingest-"+strconv.Itoa(k)
		before := rowCount()
		p := startChild(t, cfg)
		pipelinetest.Eventually(t, 30*time.Second, "the stage to make progress", func() bool { return rowCount() >= before+1500 })
		p.signal(syscall.SIGKILL)
		inFlight := pending(t, c, keys)
		if inFlight == 0 {
			t.Fatalf("kill %d did not land mid-batch: no entry was read and left unacknowledged", k)
		}
		t.Logf("SIGKILL %d: %d rows written, %d entries read but not acknowledged, %d outstanding",
			k, rowCount(), inFlight, outstanding(t, c, keys))
	}
	cfg.Consumer, cfg.AppName, cfg.Pause = "survivor", "ingest-survivor", 0
	p := startChild(t, cfg)
	pipelinetest.Eventually(t, 60*time.Second, "every entry to be acknowledged", func() bool { return outstanding(t, c, keys) == 0 })
	p.signal(syscall.SIGTERM)
	conns.stop()
	// Entries the victims committed but never acked come back to the
	// survivor and change nothing: they count as stale, with the events
	// that arrived after newer ones of their token (the history is shuffled).
	t.Logf("survivor: %v", p.counts())

	sameTable(t, db, want)
	if n, err := c.Do(ctx, c.B().Xlen().Key(keys.DLQ()).Build()).AsInt64(); err != nil || n != 0 {
		t.Fatalf("dead letters: %d, %v", n, err)
	}
	for _, name := range []string{"ingest-0", "ingest-1", "ingest-2", "ingest-survivor"} {
		if n := conns.max(name); n == 0 || n > cfg.DBConns {
			t.Errorf("%s held up to %d PostgreSQL connections; the pool allows %d", name, n, cfg.DBConns)
		}
	}
}
