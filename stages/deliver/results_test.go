package deliver

import (
	"maps"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	campaignrow "github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// The mark script appends the result events of the devices it marks for the
// first time, in one entry, with the devices' fields, and none when the same
// marks come again (a batch redone after a crash), whatever the outcome
// claimed then; with results off it appends nothing.
func TestMarksWriteResultsOnce(t *testing.T) {
	f := newFixture(t)
	h, err := New(Config{Redis: f.rdb, DB: f.db, Keys: f.keys, Senders: map[push.Platform]push.Sender{push.IOS: &NullSender{}}})
	if err != nil {
		t.Fatal(err)
	}
	c := &campaign{ID: "c1", App: testApp, ttl: time.Hour}
	const p = 3
	marks := []markReq{
		{d: device{user: 10, platform: push.IOS, token: "t10", id: 5}, outcome: push.Sent},
		{d: device{user: 11, platform: push.Android, token: "t11", id: 70000}, outcome: push.Invalid, reason: "Unregistered"},
		{d: device{user: 12, platform: push.IOS, token: "t12", id: 6}, outcome: push.Failed, reason: "BadTopic"},
	}
	for i := range marks {
		marks[i].p, marks[i].c = p, c
	}
	if err := h.execMarks(f.ctx, p, c, append([]markReq(nil), marks...)); err != nil {
		t.Fatal(err)
	}
	again := append([]markReq(nil), marks...)
	again[0].outcome = push.Failed // a repeat finds the mark set, whatever it says now
	if err := h.execMarks(f.ctx, p, c, again); err != nil {
		t.Fatal(err)
	}
	// A repeat with a device not marked yet writes that one's event only.
	late := markReq{p: p, c: c, d: device{user: 13, platform: push.IOS, token: "t13", id: 7}, outcome: push.Sent}
	if err := h.execMarks(f.ctx, p, c, append(append([]markReq(nil), marks...), late)); err != nil {
		t.Fatal(err)
	}
	marks = append(marks, late)
	entries, err := f.rdb.Do(f.ctx, f.rdb.B().Xrange().Key(f.keys.Stream(pipeline.StreamResults, p)).Start("-").End("+").Build()).AsXRange()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]pipeline.ResultEvent{}
	for _, e := range entries {
		evs, err := pipeline.ParseResults(e.FieldValues)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			got[ev.ID] = ev
		}
	}
	if len(entries) != 2 || len(got) != len(marks) {
		t.Fatalf("%d entries, %d events for %d devices marked thrice; want 2 entries", len(entries), len(got), len(marks))
	}
	want := map[string][3]string{ // id → outcome, reason, token
		"c:c1:5":        {pipeline.OutcomeSent, "", "t10"},
		"c:c1:70000":    {pipeline.OutcomeInvalid, "Unregistered", "t11"},
		"c:c1:6:failed": {pipeline.OutcomeFailed, "BadTopic", "t12"},
		"c:c1:7":        {pipeline.OutcomeSent, "", "t13"},
	}
	for id, w := range want {
		e := got[id]
		if e.Outcome != w[0] || e.Reason != w[1] || e.Token != w[2] || e.Campaign != "c1" || e.App != testApp || e.AtMs == 0 {
			t.Errorf("event %s = %+v, want outcome %s reason %q token %s", id, e, w[0], w[1], w[2])
		}
	}

	reasons, err := campaignrow.Reasons(f.ctx, f.rdb, f.keys, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"fcm Unregistered": 1, "apns BadTopic": 1}; !maps.Equal(reasons, want) {
		t.Errorf("reasons after three mark calls: %v, want each counted once: %v", reasons, want)
	}

	h.cfg.NoResults = true
	c2 := &campaign{ID: "c2", App: testApp, ttl: time.Hour}
	if err := h.execMarks(f.ctx, p, c2, []markReq{{p: p, c: c2, d: device{user: 1, token: "x", id: 9}, outcome: push.Sent}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.rdb.Do(f.ctx, f.rdb.B().Xlen().Key(f.keys.Stream(pipeline.StreamResults, p)).Build()).AsInt64(); n != 2 {
		t.Errorf("results off: the stream holds %d entries, want the 2 written with results on", n)
	}
}

// A direct message's events name the message; devices failed after their
// user's last retry get a failed event with the reason, once, and count
// under it once, however often the round is redone.
func TestSettledFailuresWriteResultsOnce(t *testing.T) {
	f := newFixture(t)
	h, err := New(Config{Redis: f.rdb, DB: f.db, Keys: f.keys, Senders: map[push.Platform]push.Sender{push.IOS: &NullSender{}}})
	if err != nil {
		t.Fatal(err)
	}
	m := &campaign{ID: "m1", App: testApp, ttl: time.Hour, message: true}
	const p = 2
	targets := []target{{c: m, user: 20}, {c: m, user: 21}}
	s := settlement{
		done:    []int64{1, 1},
		bare:    []bool{false, false},
		failed:  [][]device{{{user: 20, platform: push.IOS, token: "t20", id: 40}}, {{user: 21, platform: push.Android, token: "t21", id: 41}, {user: 21, platform: push.IOS, token: "t21b", id: 42}}},
		reasons: []string{"ServiceUnavailable", "InternalServerError"},
	}
	// Device 42 was marked sent meanwhile (a DLQ retry): not failed, no event.
	if err := h.execMarks(f.ctx, p, m, []markReq{{p: p, c: m, d: s.failed[1][1], outcome: push.Sent}}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := h.countSettled(f.ctx, p, targets, s); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := f.rdb.Do(f.ctx, f.rdb.B().Xrange().Key(f.keys.Stream(pipeline.StreamResults, p)).Start("-").End("+").Build()).AsXRange()
	if err != nil {
		t.Fatal(err)
	}
	var evs []pipeline.ResultEvent
	for _, e := range entries {
		got, err := pipeline.ParseResults(e.FieldValues)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, got...)
	}
	want := map[string]string{"m:m1:42": pipeline.OutcomeSent, "m:m1:40:failed": pipeline.OutcomeFailed, "m:m1:41:failed": pipeline.OutcomeFailed}
	if len(entries) != 2 || len(evs) != len(want) {
		t.Fatalf("%d entries, %d events: %+v; want 2 entries (the mark, the first settle) and %d events", len(entries), len(evs), evs, len(want))
	}
	for _, e := range evs {
		if want[e.ID] != e.Outcome || e.Message != "m1" || e.Campaign != "" {
			t.Errorf("event %+v: want outcome %q of message m1", e, want[e.ID])
		}
		if e.ID == "m:m1:40:failed" && (e.Reason != "ServiceUnavailable" || e.Token != "t20" || e.UserID != 20) {
			t.Errorf("event %+v: want reason ServiceUnavailable, token t20, user 20", e)
		}
	}
	reasons, err := campaignrow.Reasons(f.ctx, f.rdb, f.keys, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if w := map[string]int64{"apns ServiceUnavailable": 1, "fcm InternalServerError": 1}; !maps.Equal(reasons, w) {
		t.Errorf("reasons %v, want %v", reasons, w)
	}
	if n, _ := f.rdb.Do(f.ctx, f.rdb.B().Hget().Key(f.keys.Stats(p, "m1")).Field(pipeline.StatFailed).Build()).AsInt64(); n != 2 {
		t.Errorf("failed counter %d, want 2", n)
	}
}
