package campaign

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// waitCanceled asks cs about campaign id until it says canceled, failing t
// on an answer "not canceled" to a question asked cancelTrust or more after
// returned (when the cancel returned). That is the promise, and it holds on
// any machine: an answer false rests on a read sent before the flag was
// set, believed less than cancelTrust past it. Each question's time is
// taken before it is asked, so a starved test goroutine only makes the
// check more lenient, never a false failure; how long the asking takes in
// all is the test's patience, not the product's.
func waitCanceled(t *testing.T, cs *Cancels, id string, returned time.Time) {
	t.Helper()
	patience := time.Now().Add(30 * time.Second)
	for {
		asked := time.Now()
		canceled, err := cs.Canceled(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if canceled {
			t.Logf("seen canceled %v after the cancel returned", time.Since(returned))
			return
		}
		if late := asked.Sub(returned); late >= cancelTrust {
			t.Fatalf("asked %v after the cancel returned, answered not canceled", late)
		}
		if time.Now().After(patience) {
			t.Fatal("never seen canceled")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitPolled waits, without asking (a question may read the flag itself),
// until the watcher's poller has found campaign id canceled. The poller
// runs every CancelPoll; how long that takes on a busy machine is the
// test's patience, a hang guard.
func waitPolled(t *testing.T, cs *Cancels, id string) {
	t.Helper()
	w, ok := cs.watched.get(id)
	if !ok {
		t.Fatalf("%s is not watched", id)
	}
	pipelinetest.Eventually(t, 30*time.Second, "the poller sees "+id+" canceled", w.canceled.Load)
}

// A campaign the watcher forgot (nobody asked about it for Forget) and
// that was canceled meanwhile is seen canceled when asked about again.
func TestCancelsRereadAForgottenCampaign(t *testing.T) {
	rdb, db, keys := world(t)
	ctx := t.Context()
	if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: "c3", App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
		t.Fatal(err)
	}
	cs := NewCancels(rdb, keys)
	cs.Forget = time.Millisecond
	if canceled, err := cs.Canceled(ctx, "c3"); err != nil || canceled {
		t.Fatalf("before the cancel: %v %v", canceled, err)
	}
	for cs.Watching() > 0 { // forgotten at the next poll
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := Cancel(ctx, rdb, db, keys, "c3"); err != nil {
		t.Fatal(err)
	}
	if canceled, err := cs.Canceled(ctx, "c3"); err != nil || !canceled {
		t.Fatalf("asked after it was forgotten and canceled: %v %v, want canceled", canceled, err)
	}
}

// Under a Redis whose every answer comes later than CancelPoll, the
// refreshes still finish: the poller itself sees the cancel, not never
// (cut at CancelPoll, no refresh would ever finish, and only a question
// past cancelTrust would read the flag). No question asked cancelTrust
// after the cancel is answered "not canceled" (DESIGN, guarantee 7).
func TestCancelsSeenUnderASlowRedis(t *testing.T) {
	rdb, db, keys, addr := worldAt(t)
	ctx := t.Context()
	if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: "c4", App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
		t.Fatal(err)
	}
	slow, err := pipeline.NewRedis(pipelinetest.ProxyT(t, addr, CancelPoll+50*time.Millisecond).Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(slow.Close)
	cs := NewCancels(slow, keys)
	if canceled, err := cs.Canceled(ctx, "c4"); err != nil || canceled {
		t.Fatalf("before the cancel: %v %v", canceled, err)
	}
	if _, err := Cancel(ctx, rdb, db, keys, "c4"); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	waitPolled(t, cs, "c4")
	waitCanceled(t, cs, "c4", returned)
}

// While Redis does not answer at all, no answer says "not canceled" more
// than the bound after a cancel: the watcher's last read is not believed
// past cancelTrust, and the flag is read again (waiting for the caller's
// context), so no send starts on an old "not canceled".
func TestCancelsNotBelievedStaleUnderAStalledRedis(t *testing.T) {
	rdb, db, keys, addr := worldAt(t)
	ctx := t.Context()
	if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: "c5", App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
		t.Fatal(err)
	}
	p := pipelinetest.ProxyT(t, addr, 0)
	stalled, err := pipeline.NewRedis(p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stalled.Close)
	cs := NewCancels(stalled, keys)
	if canceled, err := cs.Canceled(ctx, "c5"); err != nil || canceled {
		t.Fatalf("before the cancel: %v %v", canceled, err)
	}
	time.Sleep(2 * CancelPoll) // the poller reads the flag
	p.Hold()
	if _, err := Cancel(ctx, rdb, db, keys, "c5"); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	// Each question's time is taken before it is asked: an answer false
	// to one asked cancelTrust after the cancel is the bug, however long
	// a loaded machine then takes to return it.
	for time.Since(returned) < time.Second+3*CancelPoll {
		asked := time.Now()
		qctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		canceled, err := cs.Canceled(qctx, "c5")
		cancel()
		if late := asked.Sub(returned); err == nil && !canceled && late >= cancelTrust {
			t.Fatalf("not canceled, asked %v after the cancel returned, while Redis did not answer", late)
		}
	}
	p.Release()
	waitCanceled(t, cs, "c5", returned)
}

// TestCancelOutlivesAFailedRecord: a cancel whose flag reached Redis but
// whose state PostgreSQL then refused (down at that instant; the caller got
// an error) has stopped the stages all the same: they drop the campaign's
// work from the flag. The first reader once PostgreSQL is back records it
// canceled, as it records a done, finished at the cancel's time (its flag
// holds it), not at the repair's. Before, the record said splitting (or
// scheduled, with send_at past and nothing ever released) for good, while
// RedisProgress, during the outage, had said canceled; and a list of the
// canceled campaigns never showed it. When the sends in flight at the
// cancel brought every target to its end, the cancel stopped nothing: done.
func TestCancelOutlivesAFailedRecord(t *testing.T) {
	tests := []struct {
		name   string
		sendAt time.Duration // from now; 0: not scheduled
		before string        // its state before the cancel
		landed bool          // its last target done after the flag
		want   string
	}{
		{"running", 0, StateSplitting, false, StateCanceled},
		{"scheduled", time.Hour, StateScheduled, false, StateCanceled},
		{"last sends landed after the flag", 0, StateSplitting, true, StateDone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdb, db, keys := world(t)
			ctx := t.Context()
			c := Campaign{ID: "f1", App: "a", Channels: []string{"x"}, Title: "t"}
			if tt.sendAt > 0 {
				c.SendAt = time.Now().Add(tt.sendAt)
			}
			if c, _, err := Create(ctx, rdb, db, keys, c); err != nil || c.State != tt.before {
				t.Fatalf("create: %+v %v", c, err)
			}
			// PostgreSQL refuses the cancel's record, after the flag is set.
			if _, err := db.Exec(ctx, `
				CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN RAISE EXCEPTION 'down'; END $$;
				CREATE TRIGGER refuse BEFORE UPDATE ON campaigns FOR EACH ROW
				WHEN (NEW.state = 'canceled') EXECUTE FUNCTION refuse()`); err != nil {
				t.Fatal(err)
			}
			canceling := time.Now().Truncate(time.Millisecond)
			if _, err := Cancel(ctx, rdb, db, keys, "f1"); err == nil || errors.Is(err, ErrFinished) {
				t.Fatalf("cancel with PostgreSQL refusing: %v, want its error", err)
			}
			canceled := time.Now()
			// The repair comes later than the cancel: by this much at
			// least (a loaded machine only makes it more).
			time.Sleep(50 * time.Millisecond)
			if _, err := db.Exec(ctx, `DROP TRIGGER refuse ON campaigns`); err != nil {
				t.Fatal(err)
			}
			if tt.landed { // one range of two users, both sent
				do(t, rdb,
					rdb.B().Hset().Key(keys.Campaign("f1")).FieldValue().FieldValue(pipeline.CampaignSplitDone, "1").
						FieldValue(pipeline.CampaignRangesTotal, "1").Build(),
					rdb.B().Hset().Key(keys.RangeUsers("f1")).FieldValue().FieldValue("x/0.0", "2").Build(),
					rdb.B().Hset().Key(keys.Stats(1, "f1")).FieldValue().FieldValue(pipeline.StatIn, "2").
						FieldValue(pipeline.StatTargets, "2").FieldValue(pipeline.StatUsersDone, "2").FieldValue(pipeline.StatSent, "2").Build())
			}
			// A list of the state is the first reader.
			reps, _, err := List(ctx, rdb, db, keys, ListQuery{State: tt.want})
			if err != nil || len(reps) != 1 || reps[0].ID != "f1" || reps[0].State != tt.want {
				t.Fatalf("%s campaigns after PostgreSQL is back: %+v %v, want f1", tt.want, reps, err)
			}
			rep, err := Progress(ctx, rdb, db, keys, "f1")
			if err != nil || rep.State != tt.want || rep.FinishedAt == nil {
				t.Fatalf("after PostgreSQL is back: %+v %v, want %s and finished", rep, err, tt.want)
			}
			if tt.want == StateCanceled && (rep.FinishedAt.Before(canceling) || rep.FinishedAt.After(canceled)) {
				t.Errorf("finished_at %v, want the cancel's time, between %v and %v, not the repair's",
					rep.FinishedAt, canceling, canceled)
			}
			var state string
			if err := db.QueryRow(ctx, `SELECT state FROM campaigns WHERE id = 'f1'`).Scan(&state); err != nil || state != tt.want {
				t.Fatalf("recorded state %q %v, want %s", state, err, tt.want)
			}
			if ok, err := Start(ctx, db, "f1"); ok || err != nil {
				t.Fatalf("it starts: %v %v", ok, err)
			}
			rep, err = Cancel(ctx, rdb, db, keys, "f1")
			if tt.want == StateCanceled && (err != nil || rep.State != StateCanceled) ||
				tt.want == StateDone && !errors.Is(err, ErrFinished) {
				t.Fatalf("cancel again: %+v %v", rep, err)
			}
		})
	}
}

// TestLostCancelFlagIsSetAgain: Redis lost a canceled campaign's flag (a
// failover to a replica that had not received it, AOF's last second before
// a crash) while its entries survived: the stages, which read only the
// flag, would send the rest of it. The record says canceled, and the first
// reader of the campaign's progress (the console reads it every second, the
// list, status) sets the flag again. Before, nothing did.
func TestLostCancelFlagIsSetAgain(t *testing.T) {
	tests := []struct {
		name string
		read func(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys) error
	}{
		{"progress", func(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys) error {
			_, err := Progress(ctx, rdb, db, keys, "lf")
			return err
		}},
		{"list", func(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys) error {
			_, _, err := List(ctx, rdb, db, keys, ListQuery{})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdb, db, keys := world(t)
			ctx := t.Context()
			if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: "lf", App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
				t.Fatal(err)
			}
			if _, err := Cancel(ctx, rdb, db, keys, "lf"); err != nil {
				t.Fatal(err)
			}
			do(t, rdb, rdb.B().Del().Key(keys.Canceled("lf")).Build()) // lost
			if err := tt.read(ctx, rdb, db, keys); err != nil {
				t.Fatal(err)
			}
			if canceled, err := NewCancels(rdb, keys).Canceled(ctx, "lf"); err != nil || !canceled {
				t.Fatalf("the stages after a read: canceled %v, %v; want canceled", canceled, err)
			}
			rep, err := Progress(ctx, rdb, db, keys, "lf")
			if err != nil || rep.FinishedAt == nil {
				t.Fatalf("progress: %+v %v", rep, err)
			}
			at, err := rdb.Do(ctx, rdb.B().Get().Key(keys.Canceled("lf")).Build()).AsInt64()
			if err != nil || at != rep.FinishedAt.UnixMilli() {
				t.Errorf("the flag says the cancel was at %d %v, want its record's %d", at, err, rep.FinishedAt.UnixMilli())
			}
			ttl, err := rdb.Do(ctx, rdb.B().Pttl().Key(keys.Canceled("lf")).Build()).AsInt64()
			if err != nil || ttl <= 0 {
				t.Fatalf("the flag's PTTL %d %v, want it to expire with the counters", ttl, err)
			}
		})
	}
}

// TestWatcherReadsTheRecords: a cancel whose flag Redis lost, with nobody
// reading the campaign, stops the stages anyway: their watcher reads the
// records of what it watches (Cancels.DB) and sets the flag again. Without
// a database it cannot know.
func TestWatcherReadsTheRecords(t *testing.T) {
	rdb, db, keys := world(t)
	ctx := t.Context()
	for _, id := range []string{"wr", "wr-other"} {
		if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: id, App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	withDB, without := NewCancels(rdb, keys), NewCancels(rdb, keys)
	withDB.DB = db
	for _, cs := range []*Cancels{withDB, without} {
		for _, id := range []string{"wr", "wr-other"} {
			if canceled, err := cs.Canceled(ctx, id); err != nil || canceled {
				t.Fatalf("%s before the cancel: canceled %v, %v", id, canceled, err)
			}
		}
	}
	// Canceled, its flag lost before any watcher read it: the record alone
	// says so (Cancel sets the flag first, which a watcher could read).
	if _, err := db.Exec(ctx, `UPDATE campaigns SET state = $1, finished_at = now() WHERE id = 'wr'`, StateCanceled); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 4*recordPoll, "the watcher with a database sees the cancel", func() bool {
		canceled, err := withDB.Canceled(ctx, "wr")
		return err == nil && canceled
	})
	if n, err := rdb.Do(ctx, rdb.B().Exists().Key(keys.Canceled("wr")).Build()).AsInt64(); err != nil || n != 1 {
		t.Errorf("the flag after the watcher read the record: exists %d, %v; want set again", n, err)
	}
	if canceled, err := withDB.Canceled(ctx, "wr-other"); err != nil || canceled {
		t.Errorf("the other campaign: canceled %v, %v; want not", canceled, err)
	}
	// The one without a database sees it now through the flag set again.
	pipelinetest.Eventually(t, 10*time.Second, "the watcher without a database sees the flag set again", func() bool {
		canceled, err := without.Canceled(ctx, "wr")
		return err == nil && canceled
	})
}
