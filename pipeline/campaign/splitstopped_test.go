package campaign

import (
	"errors"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
)

// TestCanceledMidSplitSaysSo: a campaign canceled while split still cut it
// reports SplitStopped: its targets are the people of the ranges cut by
// then, which the list and status showed as if they were its audience.
// One whose split was done, and one canceled before its start, do not.
// A report from Redis alone (PostgreSQL down) says the same.
func TestCanceledMidSplitSaysSo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		splitDone bool
		sendAt    time.Duration // from now; 0: at once
		want      bool
	}{
		{"mid-split", false, 0, true},
		{"split done", true, 0, false},
		{"before its start", false, time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rdb, db, keys := world(t)
			ctx := t.Context()
			c := Campaign{ID: "c", App: "a", Channels: []string{"x"}, Title: "t"}
			if tt.sendAt > 0 {
				c.SendAt = time.Now().Add(tt.sendAt)
			}
			if _, _, err := Create(ctx, rdb, db, keys, c); err != nil {
				t.Fatal(err)
			}
			if tt.sendAt == 0 {
				// One range of three people out; split done or not.
				do(t, rdb, rdb.B().Hset().Key(keys.RangeUsers("c")).FieldValue().FieldValue("x/0.0", "3").Build(),
					rdb.B().Hset().Key(keys.Stats(1, "c")).FieldValue().FieldValue(pipeline.StatIn, "3").FieldValue(pipeline.StatTargets, "3").Build())
			}
			if tt.splitDone {
				do(t, rdb, rdb.B().Hset().Key(keys.Campaign("c")).FieldValue().FieldValue(pipeline.CampaignSplitDone, "1").
					FieldValue(pipeline.CampaignRangesTotal, "1").Build())
			}
			if _, err := Cancel(ctx, rdb, db, keys, "c"); err != nil {
				t.Fatal(err)
			}
			rep, err := Progress(ctx, rdb, db, keys, "c")
			if err != nil || rep.State != StateCanceled {
				t.Fatalf("progress: %+v %v, want canceled", rep, err)
			}
			if rep.SplitStopped != tt.want {
				t.Errorf("SplitStopped %v, want %v (targets %d)", rep.SplitStopped, tt.want, rep.Targets)
			}
			// The same from Redis alone (PostgreSQL down): it was never
			// set there, and a partial count read as the whole audience.
			rep, err = RedisProgress(ctx, rdb, keys, "c", errors.New("PostgreSQL down"))
			if !errors.Is(err, ErrPartial) || rep.State != StateCanceled {
				t.Fatalf("RedisProgress: %+v %v, want canceled, ErrPartial", rep, err)
			}
			if rep.SplitStopped != tt.want {
				t.Errorf("from Redis alone: SplitStopped %v, want %v (targets %d)", rep.SplitStopped, tt.want, rep.Targets)
			}
		})
	}
}
