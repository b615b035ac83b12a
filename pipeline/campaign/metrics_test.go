package campaign

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pushpipe/pushpipe/pipeline"
)

// The progress metrics count the campaigns not over by state, and sum the
// people the sending ones are to reach and have reached, as their counters
// stand at the scrape: a campaign the counters show done leaves them
// although its row still says running, as does one whose cancel flag is
// set (the stages stopped it; its record failed), and the next scrape
// follows the counters as they move.
func TestProgressMetricsFollowTheCounters(t *testing.T) {
	rdb, db, keys := world(t)
	ctx := t.Context()
	create := func(c Campaign) {
		t.Helper()
		c.App, c.Channels, c.Title = "a", []string{"x"}, "t"
		if _, created, err := Create(ctx, rdb, db, keys, c); err != nil || !created {
			t.Fatal(created, err)
		}
	}
	create(Campaign{ID: "later", SendAt: time.Now().Add(time.Hour)})
	create(Campaign{ID: "cutting"})
	create(Campaign{ID: "sending"})
	create(Campaign{ID: "over"})
	// What split, dedupe and deliver leave: sending has its one range of 10
	// targets out, 4 of them done; over has all of its 2 done.
	counters := func(id string, targets, done int) {
		t.Helper()
		do(t, rdb,
			rdb.B().Hset().Key(keys.Campaign(id)).FieldValue().FieldValue(pipeline.CampaignSplitDone, "1").
				FieldValue(pipeline.CampaignRangesTotal, "1").Build(),
			rdb.B().Hset().Key(keys.RangeUsers(id)).FieldValue().FieldValue("x/0.0", itoa(targets)).Build(),
			rdb.B().Hset().Key(keys.Stats(1, id)).FieldValue().FieldValue(pipeline.StatIn, itoa(targets)).
				FieldValue(pipeline.StatTargets, itoa(targets)).FieldValue(pipeline.StatUsersDone, itoa(done)).Build())
	}
	counters("sending", 10, 4)
	counters("over", 2, 2)

	reg := prometheus.NewRegistry()
	reg.MustRegister(NewProgressMetrics(rdb, db, keys))
	tests := []struct {
		name     string
		done     int  // sending's targets done before the scrape
		canceled bool // its cancel flag set (its record failed): over
		want     string
	}{
		{"one of each", 4, false, `
pushpipe_campaigns_active{state="running"} 1
pushpipe_campaigns_active{state="scheduled"} 1
pushpipe_campaigns_active{state="splitting"} 1
pushpipe_campaigns_active_reached 4
pushpipe_campaigns_active_targets 10
`},
		{"sending done", 10, false, `
pushpipe_campaigns_active{state="running"} 0
pushpipe_campaigns_active{state="scheduled"} 1
pushpipe_campaigns_active{state="splitting"} 1
pushpipe_campaigns_active_reached 0
pushpipe_campaigns_active_targets 0
`},
		{"sending canceled", 4, true, `
pushpipe_campaigns_active{state="running"} 0
pushpipe_campaigns_active{state="scheduled"} 1
pushpipe_campaigns_active{state="splitting"} 1
pushpipe_campaigns_active_reached 0
pushpipe_campaigns_active_targets 0
`},
	}
	for _, tt := range tests {
		counters("sending", 10, tt.done)
		if tt.canceled {
			do(t, rdb, rdb.B().Set().Key(keys.Canceled("sending")).Value("1").Build())
		}
		want := `
# HELP pushpipe_campaigns_active Campaigns not over yet, by state (scheduled, splitting, running).
# TYPE pushpipe_campaigns_active gauge
# HELP pushpipe_campaigns_active_reached People the splitting and running campaigns have reached: sent to, failed for good, muted or a repeat suppressed.
# TYPE pushpipe_campaigns_active_reached gauge
# HELP pushpipe_campaigns_active_targets People the splitting and running campaigns are to reach (their targets, or while split cuts them their audience).
# TYPE pushpipe_campaigns_active_targets gauge
` + strings.TrimLeft(tt.want, "\n")
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
			"pushpipe_campaigns_active", "pushpipe_campaigns_active_reached", "pushpipe_campaigns_active_targets"); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

// Without PostgreSQL the scrape leaves the campaign series out and counts
// the error, rather than failing the whole scrape.
func TestProgressMetricsWithoutTheDatabase(t *testing.T) {
	rdb, db, keys := world(t)
	m := NewProgressMetrics(rdb, db, keys)
	db.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	n, err := testutil.GatherAndCount(reg)
	if err != nil || n != 1 {
		t.Fatalf("%d series, %v: want the error counter alone", n, err)
	}
	if got := testutil.ToFloat64(m.errors); got != 1 {
		t.Errorf("progress_read_errors_total %v, want 1", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
