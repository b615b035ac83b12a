package campaign

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

var env *pipelinetest.Env

func TestMain(m *testing.M) {
	pipelinetest.Main(m, pipelinetest.EnvOptions{Redis: true, Postgres: true}, &env)
}

// world is the package's shared Redis under a key prefix of the test's own
// and a fresh database: a redis-server started per test was most of this
// package's run on a loaded machine. A test that flushes Redis takes
// privateWorld.
func world(t *testing.T) (rueidis.Client, *pgxpool.Pool, pipeline.Keys) {
	t.Helper()
	rdb, db, keys, _ := worldAt(t)
	return rdb, db, keys
}

// worldAt is world, and the address of its Redis.
func worldAt(t testing.TB) (rueidis.Client, *pgxpool.Pool, pipeline.Keys, string) {
	t.Helper()
	rdb, db, _, addr := worldOn(t, env.Redis.Addr)
	return rdb, db, pipeline.NewKeys("t"+strconv.FormatUint(rand.Uint64(), 36), 4), addr
}

// privateWorld is world on a Redis of the test's own, which it may flush.
func privateWorld(t *testing.T) (rueidis.Client, *pgxpool.Pool, pipeline.Keys) {
	t.Helper()
	rdb, db, keys, _ := worldOn(t, pipelinetest.RedisT(t, pipelinetest.RedisOptions{}).Addr)
	return rdb, db, keys
}

// worldOn is a client of the Redis at addr, a fresh database, and the key
// scheme of a private Redis.
func worldOn(t testing.TB, addr string) (rueidis.Client, *pgxpool.Pool, pipeline.Keys, string) {
	t.Helper()
	rdb, err := pipeline.NewRedis(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	// A copy of the package's migrated template, not a migration of its
	// own: the same schema, a fraction of the time, and every test of the
	// package takes one.
	db, err := pgxpool.New(context.Background(), pipelinetest.MigratedDatabaseT(t, env.Postgres))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return rdb, db, pipeline.NewKeys("t", 4), addr
}

func do(t *testing.T, rdb rueidis.Client, cmds ...rueidis.Completed) {
	t.Helper()
	for _, r := range rdb.DoMulti(context.Background(), cmds...) {
		if err := r.Error(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDoneIsRecorded: the first reader that sees a campaign done by its
// counters records it in PostgreSQL with its counts and the time its last
// target was done (not the time of the reading), and the report stays
// after Redis lost everything.
func TestDoneIsRecorded(t *testing.T) {
	rdb, db, keys := privateWorld(t) // it flushes Redis
	ctx := t.Context()
	c, created, err := Create(ctx, rdb, db, keys, Campaign{ID: "c1", App: "a", Channels: []string{"x"}, Title: "t"})
	if err != nil || !created {
		t.Fatal(created, err)
	}
	rep, err := Progress(ctx, rdb, db, keys, c.ID)
	if err != nil || rep.State != StateSplitting || rep.StartedAt == nil {
		t.Fatalf("fresh campaign: %+v %v", rep, err)
	}
	// What the stages leave once every target is done: one range of two
	// users resolved, both sent, the last an hour before this reading.
	ended := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	do(t, rdb,
		rdb.B().Hset().Key(keys.Campaign("c1")).FieldValue().FieldValue(pipeline.CampaignSplitDone, "1").
			FieldValue(pipeline.CampaignRangesTotal, "1").Build(),
		rdb.B().Hset().Key(keys.RangeUsers("c1")).FieldValue().FieldValue("x/0.0", "2").Build(),
		rdb.B().Hset().Key(keys.Stats(1, "c1")).FieldValue().FieldValue(pipeline.StatIn, "2").
			FieldValue(pipeline.StatTargets, "2").FieldValue(pipeline.StatUsersDone, "2").FieldValue(pipeline.StatSent, "3").
			FieldValue(pipeline.StatFirstMs, "1000").FieldValue(pipeline.StatLastMs, "2000").
			FieldValue(pipeline.StatDoneMs, strconv.FormatInt(ended.UnixMilli(), 10)).Build())
	rep, err = Progress(ctx, rdb, db, keys, "c1")
	if err != nil || rep.State != StateDone || rep.Sent != 3 || rep.FinishedAt == nil || rep.SendRate != 3 {
		t.Fatalf("done campaign: %+v %v", rep, err)
	}
	if !rep.FinishedAt.Equal(ended) {
		t.Errorf("finished_at %v, want %v: when its last target was done", rep.FinishedAt, ended)
	}
	if _, err := Cancel(ctx, rdb, db, keys, "c1"); !errors.Is(err, ErrFinished) {
		t.Fatalf("cancel of a done campaign: %v, want ErrFinished", err)
	}
	do(t, rdb, rdb.B().Flushall().Build())
	rep, err = Progress(ctx, rdb, db, keys, "c1")
	if err != nil || rep.State != StateDone || rep.Sent != 3 || rep.Targets != 2 || rep.FinishedAt == nil {
		t.Fatalf("after FLUSHALL: %+v %v", rep, err)
	}
}

// TestRepeatedRangeIsNotDoneEarly: resolve emitted range x/0.0 twice (it
// crashed before recording the first reading), so dedupe's count of ids
// read reached the sum of the ranges' counts while x/0.1's entries were
// still unread and its users uncounted. The sums said done, and the old
// code recorded it: finished_at and a short counts snapshot, with the last
// users still to be sent. It is running until dedupe read the reading on
// record of every range. Entries read by a dedupe that did not count
// readings (a rolling upgrade) leave the readings short for good: then the
// sums decide, as before, rather than a campaign running forever.
func TestRepeatedRangeIsNotDoneEarly(t *testing.T) {
	tests := []struct {
		name            string
		countedReadings bool // by the dedupe that read x/0.0
		wantBeforeX01   string
	}{
		{"dedupe counts readings", true, StateRunning},
		{"x/0.0 read by a dedupe before readings", false, StateDone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdb, db, keys := world(t)
			ctx := t.Context()
			if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: "c1", App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
				t.Fatal(err)
			}
			record := func(users int64, reading string) string {
				return pipeline.RangeRecord{Users: users, Reading: reading}.String()
			}
			do(t, rdb,
				rdb.B().Hset().Key(keys.Campaign("c1")).FieldValue().FieldValue(pipeline.CampaignSplitDone, "1").
					FieldValue(pipeline.CampaignRangesTotal, "2").Build(),
				rdb.B().Hset().Key(keys.RangeUsers("c1")).FieldValue().
					FieldValue("x/0.0", record(4, "second")).FieldValue("x/0.1", record(3, "only")).Build())
			// Both readings of x/0.0 read (4 users on partitions 1 and 2),
			// x/0.1's not yet.
			for _, p := range []int{1, 2} {
				cmd := rdb.B().Hset().Key(keys.Stats(p, "c1")).FieldValue().FieldValue(pipeline.StatIn, "4").
					FieldValue(pipeline.StatTargets, "2").FieldValue(pipeline.StatUsersDone, "2").FieldValue(pipeline.StatSent, "2")
				if tt.countedReadings {
					cmd = cmd.FieldValue(pipeline.StatInReadings, "4").
						FieldValue(pipeline.ReadField("x/0.0", "first"), "2").FieldValue(pipeline.ReadField("x/0.0", "second"), "2")
				}
				do(t, rdb, cmd.Build())
			}
			rep, err := Progress(ctx, rdb, db, keys, "c1")
			if err != nil || rep.State != tt.wantBeforeX01 {
				t.Fatalf("x/0.1 unread: %+v %v, want %s", rep, err, tt.wantBeforeX01)
			}
			if !tt.countedReadings {
				return
			}
			// dedupe reads x/0.1 (3 users on partition 3), deliver sends them.
			do(t, rdb, rdb.B().Hset().Key(keys.Stats(3, "c1")).FieldValue().FieldValue(pipeline.StatIn, "3").
				FieldValue(pipeline.StatInReadings, "3").FieldValue(pipeline.ReadField("x/0.1", "only"), "3").
				FieldValue(pipeline.StatTargets, "3").FieldValue(pipeline.StatUsersDone, "3").FieldValue(pipeline.StatSent, "3").Build())
			rep, err = Progress(ctx, rdb, db, keys, "c1")
			if err != nil || rep.State != StateDone || rep.Targets != 7 || rep.Sent != 7 {
				t.Fatalf("every reading read: %+v %v, want done with 7 targets sent", rep, err)
			}
		})
	}
}

// TestCancelsSeeTheFlag: a process that already asked about a campaign
// learns of its cancel from the poller, without asking Redis itself, and
// no question asked cancelTrust after the cancel returned is answered
// "not canceled". (The poll's CancelPoll is a cadence a loaded machine
// stretches; cancelTrust is what bounds the answers.)
func TestCancelsSeeTheFlag(t *testing.T) {
	rdb, db, keys := world(t)
	ctx := t.Context()
	if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: "c2", App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
		t.Fatal(err)
	}
	cs := NewCancels(rdb, keys)
	if canceled, err := cs.Canceled(ctx, "c2"); err != nil || canceled {
		t.Fatalf("before the cancel: %v %v", canceled, err)
	}
	rep, err := Cancel(ctx, rdb, db, keys, "c2")
	if err != nil || rep.State != StateCanceled || rep.FinishedAt == nil {
		t.Fatalf("cancel: %+v %v", rep, err)
	}
	returned := time.Now()
	waitPolled(t, cs, "c2")
	waitCanceled(t, cs, "c2", returned)
	if ok, err := Start(ctx, db, "c2"); ok || err != nil {
		t.Fatalf("a canceled campaign started: %v %v", ok, err)
	}
	if _, err := Cancel(ctx, rdb, db, keys, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancel of an unknown campaign: %v", err)
	}
}

// TestStartAfterCancel: split reads a released campaign's flag, then starts
// it (Start); a cancel landing in between leaves it canceled, and one
// canceled before its send_at never started: no started_at. Start set it
// on whatever it found, so a campaign canceled at its send_at read as
// started although nothing of it was cut.
func TestStartAfterCancel(t *testing.T) {
	tests := []struct {
		name        string
		sendAt      time.Duration // from now; 0: not scheduled
		wantStarted bool          // its started_at after Start
	}{
		{"scheduled", time.Hour, false},
		{"splitting", 0, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdb, db, keys := world(t)
			ctx := t.Context()
			id := "st" + strconv.Itoa(i)
			c := Campaign{ID: id, App: "a", Channels: []string{"x"}, Title: "t"}
			if tt.sendAt > 0 {
				c.SendAt = time.Now().Add(tt.sendAt)
			}
			if _, _, err := Create(ctx, rdb, db, keys, c); err != nil {
				t.Fatal(err)
			}
			before, err := Cancel(ctx, rdb, db, keys, id)
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := Start(ctx, db, id); ok || err != nil {
				t.Fatalf("start after the cancel: %v %v, want false", ok, err)
			}
			rep, err := Progress(ctx, rdb, db, keys, id)
			switch {
			case err != nil || rep.State != StateCanceled:
				t.Fatalf("after the start: %+v %v, want canceled", rep, err)
			case (rep.StartedAt != nil) != tt.wantStarted:
				t.Fatalf("started_at %v, want set: %v", rep.StartedAt, tt.wantStarted)
			case tt.wantStarted && !rep.StartedAt.Equal(*before.StartedAt):
				t.Fatalf("started_at moved from %v to %v", before.StartedAt, rep.StartedAt)
			}
		})
	}
}

// TestScheduleRules: send_at at most 90 days ahead; a past one starts now.
func TestScheduleRules(t *testing.T) {
	rdb, db, keys := world(t)
	ctx := t.Context()
	base := Campaign{App: "a", Channels: []string{"x"}, Title: "t"}
	tests := []struct {
		name   string
		sendAt time.Time
		want   string // state, or "" for a validation error
	}{
		{"past", time.Now().Add(-time.Hour), StateSplitting},
		{"soon", time.Now().Add(time.Minute), StateScheduled},
		{"89 days", time.Now().Add(89 * 24 * time.Hour), StateScheduled},
		{"91 days", time.Now().Add(91 * 24 * time.Hour), ""},
	}
	for _, tt := range tests {
		c := base
		c.ID, c.SendAt = "s-"+tt.name[:2], tt.sendAt
		c, _, err := Create(ctx, rdb, db, keys, c)
		var verr *ValidationError
		switch {
		case tt.want == "" && !errors.As(err, &verr):
			t.Errorf("%s: %v, want a validation error", tt.name, err)
		case tt.want != "" && (err != nil || c.State != tt.want):
			t.Errorf("%s: state %q, %v; want %s", tt.name, c.State, err, tt.want)
		}
	}
}

// TestRateBounds: a campaign's own cap is 1 to MaxRatePerSecond (0: none)
// whoever creates it. pushpipe send stored 2,000,000, which the API refuses
// (its retry was then a 400, not the same campaign), and past the column's
// range got PostgreSQL's encode error, not the field's.
func TestRateBounds(t *testing.T) {
	rdb, db, keys := world(t)
	tests := []struct {
		name string
		rate int
		ok   bool
	}{
		{"none", 0, true},
		{"one", 1, true},
		{"max", MaxRatePerSecond, true},
		{"above max", MaxRatePerSecond + 1, false},
		{"past int4", 3_000_000_000, false},
		{"negative", -1, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Campaign{ID: "r" + strconv.Itoa(i), App: "a", Channels: []string{"x"}, Title: "t", RatePerSecond: tt.rate}
			_, _, err := Create(t.Context(), rdb, db, keys, c)
			var verr *ValidationError
			switch {
			case tt.ok && err != nil:
				t.Fatalf("rate %d: %v", tt.rate, err)
			case !tt.ok && (!errors.As(err, &verr) || !strings.Contains(err.Error(), "rate_per_second: must be a whole number of sends per second from 1 to 1000000")):
				t.Fatalf("rate %d: %v, want a validation error naming rate_per_second and its bounds", tt.rate, err)
			}
		})
	}
}

// TestListNextLeadsSomewhere: under a state filter the counters can move
// (running), a page that ends the listed campaigns has no Next, even when
// older campaigns the filter cannot list yet from the table alone
// (splitting) follow it; Next used to name the page's last campaign, and
// the page it led to was empty. Pages still join.
func TestListNextLeadsSomewhere(t *testing.T) {
	rdb, db, keys := world(t)
	ctx := t.Context()
	// Oldest first: a and c running by their counters, b and d splitting.
	for _, id := range []string{"a", "b", "c", "d"} {
		if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: id, App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
			t.Fatal(err)
		}
		if id == "a" || id == "c" {
			do(t, rdb, rdb.B().Hset().Key(keys.Campaign(id)).FieldValue().FieldValue(pipeline.CampaignSplitDone, "1").
				FieldValue(pipeline.CampaignRangesTotal, "1").Build())
		}
	}
	tests := []struct {
		state string
		limit int
		want  string // the pages, each its ids and its next
	}{
		{StateRunning, 1, "[c]>c [a]>"},
		{StateRunning, 2, "[c a]>"},
		{StateRunning, 3, "[c a]>"},
		{StateSplitting, 1, "[d]>d [b]>"},
		{"", 2, "[d c]>c [b a]>"},
		{"", 4, "[d c b a]>"},
		{StateDone, 1, "[]>"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.state, tt.limit), func(t *testing.T) {
			var pages []string
			before := ""
			for range 5 {
				reps, next, err := List(ctx, rdb, db, keys, ListQuery{State: tt.state, Limit: tt.limit, Before: before})
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, r := range reps {
					ids = append(ids, r.ID)
				}
				pages = append(pages, fmt.Sprintf("%v>%s", ids, next))
				if before = next; next == "" {
					break
				}
			}
			if got := strings.Join(pages, " "); got != tt.want {
				t.Errorf("pages %s, want %s", got, tt.want)
			}
		})
	}
}

// TestResplitKeepsTheSchedule: `replay --resplit` after Redis lost
// everything re-runs a campaign from PostgreSQL. One still scheduled is
// scheduled again for its send_at: appended at once, split started it
// there and then, hours early. One whose send_at passed while its start
// entry was lost is due at once (split's runner releases it at its next
// poll); one already started is appended.
func TestResplitKeepsTheSchedule(t *testing.T) {
	tests := []struct {
		name     string
		sendAt   time.Duration // from now; 0: none
		passed   bool          // send_at passed while Redis was down
		appended bool          // else waits in the delayed set, due at send_at
	}{
		{"scheduled", time.Hour, false, false},
		{"send_at passed meanwhile", time.Hour, true, false},
		{"started", 0, false, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdb, db, keys := privateWorld(t) // it flushes Redis
			ctx := t.Context()
			id := "rs" + strconv.Itoa(i)
			c := Campaign{ID: id, App: "a", Channels: []string{"x"}, Title: "t"}
			if tt.sendAt > 0 {
				c.SendAt = time.Now().Add(tt.sendAt)
			}
			c, _, err := Create(ctx, rdb, db, keys, c)
			if err != nil {
				t.Fatal(err)
			}
			if tt.passed { // the clock moved past it (no sleep: a loaded machine)
				c.SendAt = c.SendAt.Add(-2 * tt.sendAt)
				if _, err := db.Exec(ctx, `UPDATE campaigns SET send_at = $2 WHERE id = $1`, id, c.SendAt); err != nil {
					t.Fatal(err)
				}
			}
			do(t, rdb, rdb.B().Flushall().Build())
			if _, err := Resplit(ctx, rdb, db, keys, id); err != nil {
				t.Fatal(err)
			}
			msg := startMessage(keys, id)
			n, err := rdb.Do(ctx, rdb.B().Xlen().Key(msg.Stream).Build()).AsInt64()
			if err != nil {
				t.Fatal(err)
			}
			at, waits, err := pipeline.ScheduledAt(ctx, rdb, msg)
			switch {
			case err != nil:
				t.Fatal(err)
			case tt.appended && (n != 1 || waits):
				t.Fatalf("%d entries appended, waiting %v; want 1 appended", n, waits)
			case !tt.appended && (n != 0 || !waits || !at.Equal(c.SendAt.Truncate(time.Millisecond))):
				t.Fatalf("%d entries appended, waiting %v until %v; want none appended, waiting until %v", n, waits, at, c.SendAt)
			}
		})
	}
}

// TestListWhileCampaignsComeAndMove: campaigns created between two pages
// are newer than the cursor, so the pages never list them (a new first
// page does), and never list one twice or skip one; a campaign that
// changes state between pages is listed by the state it has when its page
// is read, whatever the cursor's own state became.
func TestListWhileCampaignsComeAndMove(t *testing.T) {
	tests := []struct {
		state string
		want  string // the ids the pages list, in order
	}{
		{"", "[f e d c b a]"},
		{StateSplitting, "[f e d b a]"}, // c canceled before its page
	}
	for _, tt := range tests {
		t.Run("state="+tt.state, func(t *testing.T) {
			rdb, db, keys := world(t)
			ctx := t.Context()
			create := func(id string) {
				t.Helper()
				if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: id, App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
					t.Fatal(err)
				}
			}
			for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
				create(id)
			}
			var ids []string
			before := ""
			for page := 0; page < 10; page++ {
				reps, next, err := List(ctx, rdb, db, keys, ListQuery{State: tt.state, Limit: 2, Before: before})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range reps {
					ids = append(ids, r.ID)
				}
				if page == 0 {
					create("g") // newer than every page to come
					create("h")
					// The cursor (e) and a campaign of a page to come (c) change state.
					for _, id := range []string{"e", "c"} {
						if _, err := Cancel(ctx, rdb, db, keys, id); err != nil {
							t.Fatal(err)
						}
					}
				}
				if before = next; next == "" {
					break
				}
			}
			if got := fmt.Sprint(ids); got != tt.want {
				t.Errorf("pages list %s, want %s", got, tt.want)
			}
		})
	}
}
