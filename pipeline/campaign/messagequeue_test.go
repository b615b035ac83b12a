package campaign

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// tracedDB is a fresh database whose pool counts its calls.
func tracedDB(t *testing.T) (*pgxpool.Pool, *pipelinetest.RoundTrips) {
	t.Helper()
	calls := &pipelinetest.RoundTrips{}
	return pipelinetest.TracedPool(t, pipelinetest.MigratedDatabaseT(t, env.Postgres), calls), calls
}

// usersIn counts the users (or raw tokens) of message id appended to the
// partitions of stream, both lanes.
func usersIn(t *testing.T, rdb rueidis.Client, keys pipeline.Keys, stream, id string) int {
	t.Helper()
	n := 0
	for _, l := range []pipeline.Lane{pipeline.Bulk, pipeline.Express} {
		for _, s := range keys.Streams(l.Stream(stream)) {
			xs, err := rdb.Do(t.Context(), rdb.B().Xrange().Key(s).Start("-").End("+").Build()).AsXRange()
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range xs {
				if x.FieldValues[pipeline.FieldCampaign] != id {
					continue
				}
				if stream == pipeline.StreamDeliver {
					e, err := pipeline.ParseDeliverEntry(x.FieldValues)
					if err != nil {
						t.Fatal(err)
					}
					n += len(e.Tokens)
					continue
				}
				e, err := pipeline.ParseDedupeEntry(x.FieldValues)
				if err != nil {
					t.Fatal(err)
				}
				n += len(e.Users) + len(e.Muted)
			}
		}
	}
	return n
}

// A new message costs the API two PostgreSQL round trips: its row, then
// the mark that it is queued. It cost six: a lookup of its id before the
// INSERT, then, queued under the row's lock, BEGIN, SELECT ... FOR UPDATE,
// UPDATE, COMMIT. A message's appends are idempotent on their own
// (appendOnce), so the lock bought nothing but round trips and
// PostgreSQL's CPU (#15: 38 CPU-µs a send).
// Requests with the same id at once still append each user or raw token
// once, and exactly one of them reports it created.
func TestMessageQueuedInTwoRoundTrips(t *testing.T) {
	t.Parallel()
	rdb, _, keys, _ := worldAt(t)
	db, calls := tracedDB(t)
	tests := []struct {
		name   string
		give   Message
		stream string // where its targets are appended
	}{
		{"users", chat("q-users", []int64{7, 3, 1_000_003}), pipeline.StreamDedupe},
		{"raw tokens", chat("q-tokens", nil, iosA, iosB), pipeline.StreamDeliver},
	}
	// The API's checks of a new message (its app, its payload) ask nothing
	// of PostgreSQL here; a stored id is looked up only when the insert
	// finds it taken, or a check refuses it.
	admit := func(context.Context, Campaign) error { return nil }
	for _, tt := range tests {
		before := calls.N.Load()
		if _, created, err := CreateMessage(t.Context(), rdb, db, keys, tt.give, admit); err != nil || !created {
			t.Fatalf("%s: created %v, %v", tt.name, created, err)
		}
		if got := calls.N.Load() - before; got != 2 {
			t.Errorf("%s: a new message cost %d PostgreSQL round trips, want 2 (its row, then queued)", tt.name, got)
		}
		if got, want := usersIn(t, rdb, keys, tt.stream, tt.give.ID), len(tt.give.Users)+len(tt.give.Tokens); got != want {
			t.Errorf("%s: %d targets appended, want %d", tt.name, got, want)
		}
	}

	for _, tt := range tests {
		m := tt.give
		m.ID += "-racing"
		var created atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				_, c, err := CreateMessage(t.Context(), rdb, db, keys, m, admit)
				if err != nil {
					t.Errorf("%s: %v", tt.name, err)
				}
				if c {
					created.Add(1)
				}
			})
		}
		wg.Wait()
		if created.Load() != 1 {
			t.Errorf("%s: %d of 8 requests with the same id at once created it, want 1", tt.name, created.Load())
		}
		if got, want := usersIn(t, rdb, keys, tt.stream, m.ID), len(m.Users)+len(m.Tokens); got != want {
			t.Errorf("%s: 8 requests at once appended %d targets, want %d (each once)", tt.name, got, want)
		}
	}
}
