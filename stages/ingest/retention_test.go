package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/ingest"
)

// Past --keep-tombstones, deleted and invalidated devices are purged (they
// grew the table by every uninstalled app for ever), in rounds, however
// many there are; active devices of any age and younger tombstones stay.
// A registration older than the horizon is dropped: it may predate a purged
// deletion, and would bring the device back. An invalidation as old is
// applied (APNs stamps it with when the token stopped being valid).
func TestTombstonesPastTheHorizon(t *testing.T) {
	_, db := testDB(t, 4)
	ctx := context.Background()
	keys := testKeys()
	now := time.Now()
	at := func(ago time.Duration) int64 { return now.Add(-ago).UnixMicro() }
	ev := func(op string, token string, user int64, ago time.Duration) devices.Event {
		e := devices.Event{Op: op, App: "news", Token: token, User: user, At: at(ago)}
		if op == pipeline.OpPut {
			e.Platform, e.Locale = devices.IOS, "en"
		}
		return e
	}
	tok := apnsToken
	// Written before there was a horizon.
	before := ingest.New(ingest.Config{DB: db, Log: zerolog.Nop()})
	for _, b := range [][]devices.Event{
		{ev(pipeline.OpPut, tok(1), 1, 80*time.Hour), ev(pipeline.OpPut, tok(2), 2, 80*time.Hour), ev(pipeline.OpPut, tok(3), 3, 80*time.Hour),
			ev(pipeline.OpPut, tok(4), 4, 2*time.Hour), ev(pipeline.OpPut, tok(6), 6, 80*time.Hour)},
		{ev(pipeline.OpDelete, tok(1), 0, 72*time.Hour), ev(pipeline.OpInvalidate, tok(2), 2, 72*time.Hour), ev(pipeline.OpDelete, tok(4), 0, time.Hour)},
	} {
		if err := before.Handle(ctx, batchOf(keys, b...)); err != nil {
			t.Fatal(err)
		}
	}
	// An erasure past the horizon and one within it.
	if _, err := db.Exec(ctx, `INSERT INTO erasures (user_id, erased_at) VALUES (77, now() - interval '49 hours'), (78, now() - interval '47 hours')`); err != nil {
		t.Fatal(err)
	}
	// 12,000 more old tombstones: more than a purge round.
	if _, err := db.Exec(ctx, `INSERT INTO devices (app, token, user_id, platform, state, event_at)
		SELECT 'bulk', 'tok-' || g, g, 1, 1 + g % 2, now() - interval '50 hours' FROM generate_series(1, 12000) g`); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	h := ingest.New(ingest.Config{DB: db, Log: zerolog.Nop(), Metrics: reg, KeepTombstones: 48 * time.Hour})
	purgeCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.PurgeTombstones(purgeCtx) }()
	purged := func(what string) float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if mf.GetName() == "pushpipe_ingest_purged_total" && m.GetLabel()[0].GetValue() == what {
					return m.GetCounter().GetValue()
				}
			}
		}
		return 0
	}
	pipelinetest.Eventually(t, 30*time.Second, "the first pass", func() bool {
		return purged("tombstones") >= 12002 && purged("erasures") >= 1
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("PurgeTombstones: %v", err)
	}
	if got, gotE := purged("tombstones"), purged("erasures"); got != 12002 || gotE != 1 {
		t.Errorf("purged %v tombstones and %v erasures, want 12002 and 1", got, gotE)
	}
	var erased []int64
	if err := pgxscan(ctx, db, `SELECT user_id FROM erasures ORDER BY user_id`, &erased); err != nil || len(erased) != 1 || erased[0] != 78 {
		t.Errorf("erasures left: %v (%v), want user 78's only", erased, err)
	}

	// Later events, through the handler with the horizon.
	if err := h.Handle(ctx, batchOf(keys,
		ev(pipeline.OpPut, tok(1), 1, 73*time.Hour),        // older than its purged deletion
		ev(pipeline.OpInvalidate, tok(3), 3, 60*time.Hour), // the token died 60 h ago
		ev(pipeline.OpPut, tok(5), 5, time.Minute),
	)); err != nil {
		t.Fatal(err)
	}
	if got := eventsCounted(t, reg, "expired"); got != 1 {
		t.Errorf("%v registrations counted expired, want 1", got)
	}
	tests := []struct {
		name  string
		token string
		state devices.State
		found bool
	}{
		{"an old deleted device", tok(1), 0, false},
		{"an old invalidated device", tok(2), 0, false},
		{"an old active device, invalidated by an old invalidation", tok(3), devices.Invalidated, true},
		{"a young tombstone", tok(4), devices.Deleted, true},
		{"a new registration", tok(5), devices.Active, true},
		{"an old active device", tok(6), devices.Active, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := rowOf(t, db, "news", tt.token)
			if ok != tt.found || ok && r.State != tt.state {
				t.Errorf("row %v (found %v), want found %v state %d", r, ok, tt.found, tt.state)
			}
		})
	}
	var left int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM devices WHERE app = 'bulk'`).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d old tombstones left (%v), want 0", left, err)
	}
}

// pgxscan reads one bigint column into out.
func pgxscan(ctx context.Context, db *pgxpool.Pool, sql string, out *[]int64) error {
	rows, err := db.Query(ctx, sql)
	if err != nil {
		return err
	}
	*out, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	return err
}
