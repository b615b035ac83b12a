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

// TestCancelThatStoppedNothingIsDone: a cancel races the campaign's last
// sends. Deliver checks the flag before each send, so the sends already
// started when the flag was set go out, and when they were all that was
// left, every target reached its end: the cancel stopped nothing. The
// record said canceled for good (done won only when the counters showed
// every target done at the cancel's own read), so a campaign that reached
// everyone read canceled. It is done, finished when its last target was,
// and a cancel of it again is ErrFinished (409), as for any done one.
func TestCancelThatStoppedNothingIsDone(t *testing.T) {
	tests := []struct {
		name string
		read func(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys) (Report, error)
	}{
		{"progress", func(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys) (Report, error) {
			return Progress(ctx, rdb, db, keys, "cd")
		}},
		{"list of the done", func(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys) (Report, error) {
			reps, _, err := List(ctx, rdb, db, keys, ListQuery{State: StateDone})
			if err != nil || len(reps) != 1 {
				return Report{}, errors.Join(err, errors.New("the done campaigns: "+strconv.Itoa(len(reps))+", want cd"))
			}
			return reps[0], nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdb, db, keys := world(t)
			ctx := t.Context()
			if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: "cd", App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
				t.Fatal(err)
			}
			// Split and resolve are through: one range of two users,
			// both forwarded to deliver, which is sending them.
			do(t, rdb,
				rdb.B().Hset().Key(keys.Campaign("cd")).FieldValue().FieldValue(pipeline.CampaignSplitDone, "1").
					FieldValue(pipeline.CampaignRangesTotal, "1").Build(),
				rdb.B().Hset().Key(keys.RangeUsers("cd")).FieldValue().FieldValue("x/0.0", "2").Build(),
				rdb.B().Hset().Key(keys.Stats(1, "cd")).FieldValue().FieldValue(pipeline.StatIn, "2").
					FieldValue(pipeline.StatTargets, "2").Build())
			rep, err := Cancel(ctx, rdb, db, keys, "cd")
			if err != nil || rep.State != StateCanceled {
				t.Fatalf("cancel while the last sends are out: %+v %v", rep, err)
			}
			// Those sends land: both targets done, after the cancel.
			last := time.Now().Add(time.Second).Truncate(time.Millisecond)
			do(t, rdb, rdb.B().Hset().Key(keys.Stats(1, "cd")).FieldValue().FieldValue(pipeline.StatUsersDone, "2").
				FieldValue(pipeline.StatSent, "2").FieldValue(pipeline.StatDoneMs, strconv.FormatInt(last.UnixMilli(), 10)).Build())
			rep, err = tt.read(ctx, rdb, db, keys)
			if err != nil || rep.State != StateDone || rep.Sent != 2 {
				t.Fatalf("every target done after the cancel: %+v %v, want done", rep, err)
			}
			if rep.FinishedAt == nil || !rep.FinishedAt.Equal(last) {
				t.Errorf("finished_at %v, want %v: when its last target was done", rep.FinishedAt, last)
			}
			var state string
			if err := db.QueryRow(ctx, `SELECT state FROM campaigns WHERE id = 'cd'`).Scan(&state); err != nil || state != StateDone {
				t.Fatalf("recorded state %q %v, want done", state, err)
			}
			if rep, err := Cancel(ctx, rdb, db, keys, "cd"); !errors.Is(err, ErrFinished) {
				t.Fatalf("cancel again: %+v %v, want ErrFinished", rep, err)
			}
		})
	}
}
