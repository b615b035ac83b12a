package campaign

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// rateOfRecord and rateInRedis are a campaign's rate as PostgreSQL and its
// hash hold it ("" when the hash has none).
func rateOfRecord(t *testing.T, db *pgxpool.Pool, id string) int {
	t.Helper()
	var rate int
	if err := db.QueryRow(t.Context(), `SELECT rate_per_second FROM campaigns WHERE id = $1`, id).Scan(&rate); err != nil {
		t.Fatal(err)
	}
	return rate
}

func rateInRedis(t *testing.T, rdb rueidis.Client, keys pipeline.Keys, id string) string {
	t.Helper()
	v, err := rdb.Do(t.Context(), rdb.B().Hget().Key(keys.Campaign(id)).Field(HashRatePerSecond).Build()).ToString()
	if err != nil && !rueidis.IsRedisNil(err) {
		t.Fatal(err)
	}
	return v
}

// TestSetRate: a campaign not final takes a new rate (0 removes its cap),
// and the record, Redis and the report agree; every other case is its own
// error, which the API maps to its code, and changes nothing.
func TestSetRate(t *testing.T) {
	const created = 40
	tests := []struct {
		name    string
		prepare func(ctx context.Context, t *testing.T, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys)
		id      string
		rate    int
		want    error // nil: set
		invalid bool
	}{
		{name: "splitting, lowered", id: "c", rate: 10},
		{name: "splitting, raised", id: "c", rate: 500},
		{name: "cap removed", id: "c", rate: 0},
		{name: "the largest", id: "c", rate: MaxRatePerSecond},
		{name: "scheduled", id: "s", rate: 7},
		{name: "running", id: "c", rate: 9, prepare: func(ctx context.Context, t *testing.T, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys) {
			do(t, rdb, rdb.B().Hset().Key(keys.Campaign("c")).FieldValue().FieldValue(pipeline.CampaignSplitDone, "1").
				FieldValue(pipeline.CampaignRangesTotal, "1").Build(),
				rdb.B().Hset().Key(keys.RangeUsers("c")).FieldValue().FieldValue("x/0.0", "2").Build(),
				rdb.B().Hset().Key(keys.Stats(1, "c")).FieldValue().FieldValue(pipeline.StatIn, "2").FieldValue(pipeline.StatTargets, "2").Build())
		}},
		{name: "negative", id: "c", rate: -1, invalid: true},
		{name: "too high", id: "c", rate: MaxRatePerSecond + 1, invalid: true},
		{name: "unknown", id: "nope", rate: 5, want: ErrNotFound},
		{name: "a direct message", id: "m", rate: 5, want: ErrIsMessage},
		{name: "canceled", id: "c", rate: 5, want: ErrFinished, prepare: func(ctx context.Context, t *testing.T, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys) {
			if _, err := Cancel(ctx, rdb, db, keys, "c"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "done", id: "c", rate: 5, want: ErrFinished, prepare: func(ctx context.Context, t *testing.T, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys) {
			if _, err := db.Exec(ctx, `UPDATE campaigns SET state = 'done', finished_at = now() WHERE id = 'c'`); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "failed", id: "c", rate: 5, want: ErrFinished, prepare: func(ctx context.Context, t *testing.T, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys) {
			if _, err := db.Exec(ctx, `UPDATE campaigns SET state = 'failed', finished_at = now() WHERE id = 'c'`); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Side by side: each row is a database copy of its own (the
			// most of its time, waiting on PostgreSQL) and keys of its own.
			t.Parallel()
			rdb, db, keys := world(t)
			ctx := t.Context()
			if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: "c", App: "a", Channels: []string{"x"}, Title: "t", RatePerSecond: created}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: "s", App: "a", Channels: []string{"x"}, Title: "t",
				RatePerSecond: created, SendAt: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := CreateMessage(ctx, rdb, db, keys, Message{Campaign: Campaign{ID: "m", App: "a", Title: "hi"}, Users: []int64{1}}); err != nil {
				t.Fatal(err)
			}
			if tt.prepare != nil {
				tt.prepare(ctx, t, rdb, db, keys)
			}
			before, _ := Progress(ctx, rdb, db, keys, tt.id)
			rep, err := SetRate(ctx, rdb, db, keys, tt.id, tt.rate)
			var verr *ValidationError
			switch {
			case tt.invalid:
				if !errors.As(err, &verr) {
					t.Fatalf("SetRate(%d): %v, want a *ValidationError", tt.rate, err)
				}
			case tt.want != nil:
				if !errors.Is(err, tt.want) {
					t.Fatalf("SetRate: %+v %v, want %v", rep, err, tt.want)
				}
			case err != nil:
				t.Fatal(err)
			}
			want, state := tt.rate, before.State
			if tt.want != nil || tt.invalid {
				want = created
			}
			if tt.want == ErrNotFound || tt.want == ErrIsMessage {
				return
			}
			if err == nil && (rep.RatePerSecond != want || rep.State != state) {
				t.Errorf("report: rate %d state %s, want %d %s", rep.RatePerSecond, rep.State, want, state)
			}
			if got := rateOfRecord(t, db, tt.id); got != want {
				t.Errorf("record: rate %d, want %d", got, want)
			}
			if got := rateInRedis(t, rdb, keys, tt.id); got != strconv.Itoa(want) {
				t.Errorf("Redis: rate %q, want %d", got, want)
			}
		})
	}
}

// TestLostRateIsSetAgain: Redis lost the rate a SetRate wrote (a failover:
// the field gone, or the older one back). Deliver follows the field, so
// the next progress read writes the record's rate there again; one whose
// record it read before a SetRate does not put the old rate back.
func TestLostRateIsSetAgain(t *testing.T) {
	tests := []struct {
		name string
		lose func(rdb rueidis.Client, keys pipeline.Keys) rueidis.Completed
	}{
		{"field gone", func(rdb rueidis.Client, keys pipeline.Keys) rueidis.Completed {
			return rdb.B().Hdel().Key(keys.Campaign("c")).Field(HashRatePerSecond).Build()
		}},
		{"older rate back", func(rdb rueidis.Client, keys pipeline.Keys) rueidis.Completed {
			return rdb.B().Hset().Key(keys.Campaign("c")).FieldValue().FieldValue(HashRatePerSecond, "40").Build()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdb, db, keys := world(t)
			ctx := t.Context()
			if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: "c", App: "a", Channels: []string{"x"}, Title: "t", RatePerSecond: 40}); err != nil {
				t.Fatal(err)
			}
			if _, err := SetRate(ctx, rdb, db, keys, "c", 10); err != nil {
				t.Fatal(err)
			}
			do(t, rdb, tt.lose(rdb, keys))
			rep, err := Progress(ctx, rdb, db, keys, "c")
			if err != nil || rep.RatePerSecond != 10 {
				t.Fatalf("progress: %+v %v", rep, err)
			}
			if got := rateInRedis(t, rdb, keys, "c"); got != "10" {
				t.Fatalf("Redis after the progress read: rate %q, want 10 again", got)
			}
			ttl, err := rdb.Do(ctx, rdb.B().Pttl().Key(keys.Campaign("c")).Build()).AsInt64()
			if err != nil || ttl <= 0 {
				t.Fatalf("the hash's ttl %d %v: it must still expire", ttl, err)
			}

			// A reader whose record says 10, then a SetRate to 20: the
			// reader's repair must not undo it.
			r, err := loadCampaign(ctx, db, "c")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := SetRate(ctx, rdb, db, keys, "c", 20); err != nil {
				t.Fatal(err)
			}
			l, err := Counters(ctx, rdb, keys, "c")
			if err != nil {
				t.Fatal(err)
			}
			if err := keepRate(ctx, rdb, db, keys, r.c, l); err != nil {
				t.Fatal(err)
			}
			if got := rateInRedis(t, rdb, keys, "c"); got != "20" {
				t.Fatalf("Redis after a repair from a stale record: rate %q, want 20", got)
			}
		})
	}
}

// TestRatesFollowSetRate: a process's watcher answers the new rate within
// 1 s of SetRate's return (RatePoll + rateTrust), and false for a hash
// without a rate (the caller keeps the record's).
func TestRatesFollowSetRate(t *testing.T) {
	rdb, db, keys := world(t)
	ctx := t.Context()
	if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: "c", App: "a", Channels: []string{"x"}, Title: "t", RatePerSecond: 40}); err != nil {
		t.Fatal(err)
	}
	rs := NewRates(rdb, keys)
	if rate, ok, err := rs.Rate(ctx, "c"); err != nil || !ok || rate != 40 {
		t.Fatalf("rate at creation: %d %v %v, want 40", rate, ok, err)
	}
	for _, want := range []int{10, 0, 300} {
		if _, err := SetRate(ctx, rdb, db, keys, "c", want); err != nil {
			t.Fatal(err)
		}
		set := time.Now()
		for {
			asked := time.Now()
			rate, ok, err := rs.Rate(ctx, "c")
			if err != nil || !ok {
				t.Fatal(rate, ok, err)
			}
			if rate == want {
				break
			}
			// Any answer is a read sent after the question or less
			// than rateTrust before it: a question asked later than
			// that after SetRate returned has the new rate, however
			// loaded the machine (no timing of the test's own counts).
			if asked.Sub(set) > rateTrust {
				t.Fatalf("rate %d asked %v after SetRate(%d) returned, want %d", rate, asked.Sub(set), want, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	do(t, rdb, rdb.B().Hdel().Key(keys.Campaign("c")).Field(HashRatePerSecond).Build())
	time.Sleep(rateTrust + RatePoll)
	if rate, ok, err := rs.Rate(ctx, "c"); err != nil || ok {
		t.Fatalf("a hash without a rate: %d %v %v, want false", rate, ok, err)
	}
}

// TestRetryAfterSetRate: a retry of the request that created a campaign
// (a client whose POST timed out) is the same request after an operator
// changed the campaign's rate, once or more: not created again, the
// campaign going on at the rate set, Redis's included; a retry with another
// rate than the original is still a conflict, the rate set since included.
// A cancel after the change does not change that either. A row created
// but not queued (Redis failed meanwhile) is queued by the retry at the
// rate set, not the request's.
func TestRetryAfterSetRate(t *testing.T) {
	t.Parallel()
	const created = 40
	tests := []struct {
		name     string
		rates    []int // SetRate each, in order
		unqueued bool  // the row as a failed enqueue left it
		cancel   bool  // canceled after the rates were set
		retry    int   // the retry's rate_per_second
		want     error
	}{
		{name: "rate lowered", rates: []int{10}, retry: created},
		{name: "rate changed twice", rates: []int{10, 500}, retry: created},
		{name: "cap removed", rates: []int{0}, retry: created},
		{name: "set to the same", rates: []int{created}, retry: created},
		{name: "never changed", retry: created},
		{name: "not queued yet", rates: []int{10}, unqueued: true, retry: created},
		{name: "changed, then canceled", rates: []int{10}, cancel: true, retry: created},
		{name: "changed, then canceled, another rate", rates: []int{10}, cancel: true, retry: 10, want: ErrConflict},
		{name: "the rate set since", rates: []int{10}, retry: 10, want: ErrConflict},
		{name: "another rate", rates: []int{10}, retry: 7, want: ErrConflict},
		{name: "no rate", rates: []int{10}, retry: 0, want: ErrConflict},
		{name: "another rate, never changed", retry: 10, want: ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each its own Redis and database
			rdb, db, keys := world(t)
			ctx := t.Context()
			req := func(rate int) Campaign {
				return Campaign{ID: "c", App: "a", Channels: []string{"x", "y"}, Title: "t", RatePerSecond: rate}
			}
			if _, _, err := Create(ctx, rdb, db, keys, req(created)); err != nil {
				t.Fatal(err)
			}
			want := created
			for _, r := range tt.rates {
				if _, err := SetRate(ctx, rdb, db, keys, "c", r); err != nil {
					t.Fatal(err)
				}
				want = r
			}
			if tt.cancel {
				if _, err := Cancel(ctx, rdb, db, keys, "c"); err != nil {
					t.Fatal(err)
				}
			}
			if tt.unqueued {
				if _, err := db.Exec(ctx, `UPDATE campaigns SET queued_at = NULL WHERE id = 'c'`); err != nil {
					t.Fatal(err)
				}
			}
			c, wasCreated, err := Create(ctx, rdb, db, keys, req(tt.retry))
			if !errors.Is(err, tt.want) || wasCreated != (tt.unqueued && tt.want == nil) {
				t.Fatalf("retry with rate %d: created %v, %v; want created %v, %v", tt.retry, wasCreated, err, tt.unqueued, tt.want)
			}
			if err == nil && c.RatePerSecond != want {
				t.Errorf("retry answers rate %d, want the record's %d", c.RatePerSecond, want)
			}
			if got := rateOfRecord(t, db, "c"); got != want {
				t.Errorf("record: rate %d, want %d", got, want)
			}
			if got := rateInRedis(t, rdb, keys, "c"); got != strconv.Itoa(want) {
				t.Errorf("Redis: rate %q, want %d", got, want)
			}
		})
	}
}
