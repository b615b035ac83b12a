package campaign

import (
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// TestRatesFollowTheRecord: a watcher given the database (Rates.DB) of a
// campaign whose hash lost its rate, or holds an older one than the record
// (the AOF's last second), writes the record's back within recordPoll and
// answers it, with nobody reading the campaign's progress. One without
// the database goes on answering what the hash says.
func TestRatesFollowTheRecord(t *testing.T) {
	const created, set = 40, 10
	// poll stands for recordPoll (5 s), which each case would otherwise
	// wait out (Rates.RecordPoll).
	const poll = 500 * time.Millisecond
	tests := []struct {
		name  string
		stale string // the field's value after the loss; "": deleted
		db    bool
		want  int
		known bool
	}{
		{"field lost", "", true, set, true},
		{"older rate", "40", true, set, true},
		{"field lost, no database", "", false, 0, false},
		{"older rate, no database", "40", false, created, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each waits out its RecordPoll, on a Redis and database of its own
			rdb, db, keys := world(t)
			ctx := t.Context()
			if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: "c", App: "a", Channels: []string{"x"}, Title: "t", RatePerSecond: created}); err != nil {
				t.Fatal(err)
			}
			rs := NewRates(rdb, keys)
			rs.RecordPoll = poll
			if tt.db {
				rs.DB = db
			}
			if rate, ok, err := rs.Rate(ctx, "c"); err != nil || !ok || rate != created {
				t.Fatalf("before the change: %d %v %v, want %d", rate, ok, err, created)
			}
			if _, err := SetRate(ctx, rdb, db, keys, "c", set); err != nil {
				t.Fatal(err)
			}
			pipelinetest.Eventually(t, 30*time.Second, "the change followed", func() bool { // patience: a poll away
				rate, ok, err := rs.Rate(ctx, "c")
				return err == nil && ok && rate == set
			})
			if tt.stale == "" {
				do(t, rdb, rdb.B().Hdel().Key(keys.Campaign("c")).Field(HashRatePerSecond).Build())
			} else {
				do(t, rdb, rdb.B().Hset().Key(keys.Campaign("c")).FieldValue().FieldValue(HashRatePerSecond, tt.stale).Build())
			}
			// Past a poll, the loss is seen; past RecordPoll and a poll
			// more, the record's rate is back.
			// A rate written back is waited for (patience: a loaded box
			// stretches the polls); one that must not come back is watched
			// until the deadline.
			lost := time.Now()
			time.Sleep(2 * RatePoll)
			deadline := time.Now().Add(poll + time.Second + 4*RatePoll)
			if tt.want == set {
				deadline = time.Now().Add(30 * time.Second)
			}
			for {
				rate, ok, err := rs.Rate(ctx, "c")
				if err != nil {
					t.Fatal(err)
				}
				if rate == tt.want && ok == tt.known && (tt.want == set || time.Now().After(deadline)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%v after the loss: rate %d (known %v), want %d (known %v)", time.Since(lost).Round(time.Millisecond), rate, ok, tt.want, tt.known)
				}
				time.Sleep(RatePoll)
			}
			if v := rateInRedis(t, rdb, keys, "c"); tt.db && v != "10" {
				t.Errorf("the hash's rate: %q, want 10 again", v)
			}
		})
	}
}
