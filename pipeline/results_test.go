package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// Result events survive their entry (less those it lists as skipped), their
// JSON is encoding/json's, and a malformed entry is refused with what is
// wrong.
func TestResultFields(t *testing.T) {
	tests := []struct {
		name string
		give []pipeline.ResultEvent
	}{
		{"campaign", []pipeline.ResultEvent{
			{ID: pipeline.ResultID("c9", "", 42, pipeline.OutcomeInvalid), Campaign: "c9", App: "a", UserID: 7, Platform: "ios", Token: "tok",
				Outcome: pipeline.OutcomeInvalid, Reason: "Unregistered \"quoted\" é \xff", AtMs: 1700000000000},
			{ID: pipeline.ResultID("c9", "", 43, pipeline.OutcomeSent), Campaign: "c9", App: "a", UserID: 8, Platform: "android", Token: "t2",
				Outcome: pipeline.OutcomeSent, AtMs: 1700000000000},
		}},
		{"message", []pipeline.ResultEvent{
			{ID: pipeline.ResultID("", "m1", 1, pipeline.OutcomeFailed), Message: "m1", App: "a", Platform: "android", Token: "t3",
				Outcome: pipeline.OutcomeFailed, Reason: "no credentials", AtMs: 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pipeline.ParseResults(fieldMap(pipeline.ResultFields(tt.give...)))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.give) {
				t.Errorf("round trip:\n%+v\nwant\n%+v", got, tt.give)
			}
			for _, e := range got {
				want, _ := json.Marshal(e)
				want = bytes.ReplaceAll(want, []byte(`\u0026`), []byte("&"))
				if j := e.AppendJSON(nil); string(j) != string(want) {
					t.Errorf("JSON\n%s\nwant encoding/json's\n%s", j, want)
				}
			}
		})
	}
}

// An event's id names its campaign or message and device; a failure's is
// its own, since a later send (a DLQ retry) can follow it.
func TestResultID(t *testing.T) {
	tests := []struct {
		campaign, message string
		device            int64
		outcome           string
		want              string
	}{
		{"c9", "", 42, pipeline.OutcomeSent, "c:c9:42"},
		{"c9", "", 42, pipeline.OutcomeInvalid, "c:c9:42"},
		{"c9", "", 42, pipeline.OutcomeFailed, "c:c9:42:failed"},
		{"", "m1", 43, pipeline.OutcomeSent, "m:m1:43"},
		{"", "m1", 43, pipeline.OutcomeFailed, "m:m1:43:failed"},
	}
	for _, tt := range tests {
		if got := pipeline.ResultID(tt.campaign, tt.message, tt.device, tt.outcome); got != tt.want {
			t.Errorf("ResultID(%q, %q, %d, %q) = %q, want %q", tt.campaign, tt.message, tt.device, tt.outcome, got, tt.want)
		}
	}
}

// A reason comes back byte for byte, control characters included; the
// skip field drops the repeats of a redone mark, whatever their place.
func TestResultSkip(t *testing.T) {
	f := fieldMap(pipeline.ResultFields(
		pipeline.ResultEvent{ID: "c:c:1", Campaign: "c", App: "a", Platform: "ios", Token: "t1", Outcome: "failed", Reason: "a\tb\nc\x01", AtMs: 5},
		pipeline.ResultEvent{ID: "c:c:2", Campaign: "c", App: "a", Platform: "ios", Token: "t2", Outcome: "sent", AtMs: 5},
		pipeline.ResultEvent{ID: "c:c:3", Campaign: "c", App: "a", Platform: "ios", Token: "t3", Outcome: "sent", AtMs: 5},
	))
	f[pipeline.FieldSkip] = "1,3"
	got, err := pipeline.ParseResults(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "c:c:2" || got[0].Token != "t2" {
		t.Errorf("with 1 and 3 skipped: %+v, want device 2 alone", got)
	}
	delete(f, pipeline.FieldSkip)
	got, err = pipeline.ParseResults(f)
	if err != nil || len(got) != 3 || got[0].Reason != "a\tb\nc\x01" {
		t.Errorf("%+v, %v; want 3 events, the first with reason %q", got, err, "a\tb\nc\x01")
	}
}

// A malformed results entry is refused with what is wrong: the webhook
// dead-letters it with that reason.
func TestResultsMalformed(t *testing.T) {
	ok := pipeline.ResultFields(pipeline.ResultEvent{ID: "c:c:5", Campaign: "c", App: "a", UserID: 7, Platform: "ios", Token: "ab12", Outcome: "sent", AtMs: 1})
	okRecords := fieldMap(ok)[pipeline.FieldEvents]
	entry := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	c, at, ev := pipeline.FieldCampaign, pipeline.FieldAtMs, pipeline.FieldEvents
	tests := []struct {
		name string
		give map[string]string
		want string
	}{
		{"no field", entry("x", "1"), "no events field"},
		{"cut short", entry(c, "c", at, "1", ev, okRecords[:len(okRecords)-2]), "record 0: ends inside a record"},
		{"cut in the second", entry(c, "c", at, "1", ev, okRecords+okRecords[:3]), "record 1: ends inside a record"},
		{"a line cut short", entry(c, "c", at, "1", ev, "5\t7\tios\tsent\ttok\t\n5\t7\tios\tsent\ttok\t"), "line 1 does not end in a newline"},
		{"a line of 3 fields", entry(c, "c", at, "1", ev, "5\t7\tios\n"), "line 0 has 3 fields"},
		{"a line's outcome", entry(c, "c", at, "1", ev, "5\t7\tios\tlost\ttok\t\n"), `line 0: outcome "lost"`},
		{"unknown outcome", entry(c, "c", at, "1", ev, "\x03"+okRecords[1:]), "flags 0x03"},
		{"unknown platform", entry(c, "c", at, "1", ev, "\x0c"+okRecords[1:]), "flags 0x0c"},
		{"colon past the end", entry(c, "c", at, "1", ev, "\x20\x02\x02\x01\x05A"), "colon at 5 of a 1-character token"},
		{"both", entry(c, "c", pipeline.FieldMessage, "m", at, "1", ev, okRecords), "exactly one"},
		{"neither", entry(at, "1", ev, okRecords), "exactly one"},
		{"no time", entry(c, "c", ev, okRecords), "at_ms"},
		{"bad skip", entry(c, "c", at, "1", ev, okRecords, pipeline.FieldSkip, "5,x"), `skip holds "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pipeline.ParseResults(tt.give)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want it to say %q", err, tt.want)
			}
		})
	}
}

// Entries deliver wrote as text lines, before records, are still read: a
// results stream keeps a day of them through an upgrade.
func TestResultLinesStillRead(t *testing.T) {
	f := map[string]string{pipeline.FieldMessage: "m1", pipeline.FieldApp: "a", pipeline.FieldAtMs: "9",
		pipeline.FieldEvents: "41\t7\tios\tsent\t0a1b\t\n42\t7\tandroid\tinvalid\tx:APA91b\tUnregistered\n43\t8\tios\tsent\tff\t\n",
		pipeline.FieldSkip:   "43"}
	got, err := pipeline.ParseResults(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []pipeline.ResultEvent{
		{ID: "m:m1:41", Message: "m1", App: "a", UserID: 7, Platform: "ios", Token: "0a1b", Outcome: "sent", AtMs: 9},
		{ID: "m:m1:42", Message: "m1", App: "a", UserID: 7, Platform: "android", Token: "x:APA91b", Outcome: "invalid", Reason: "Unregistered", AtMs: 9},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("lines read as\n%+v\nwant\n%+v", got, want)
	}
	// A device id written another way ("041", "+42") is the same device,
	// so the same event id: it was the id as written, another event to a
	// receiver deduping by id.
	f[pipeline.FieldEvents] = "041\t7\tios\tsent\t0a1b\t\n+42\t7\tandroid\tinvalid\tx:APA91b\tUnregistered\n"
	if got, err := pipeline.ParseResults(f); err != nil || len(got) != 2 || got[0].ID != want[0].ID || got[1].ID != want[1].ID {
		t.Errorf("041 and +42 read as %+v, %v; want the ids %q and %q", got, err, want[0].ID, want[1].ID)
	}
}

// fieldMap is an entry's fields as readers get them.
func fieldMap(f []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(f); i += 2 {
		m[f[i]] = f[i+1]
	}
	return m
}

// A stream no group reads is trimmed by age by TrimOutput (Trim keeps it
// whole, waiting for its reader), and once a group reads it, as Trim.
func TestTrimOutputWithoutReader(t *testing.T) {
	ctx := context.Background()
	c := client(t, env.Redis.Addr)
	s := testKeys().Stream(pipeline.StreamResults, 0)
	for range 10 {
		if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: s, Fields: []string{"n", "1"}}); err != nil {
			t.Fatal(err)
		}
	}
	later := time.Now().Add(time.Hour + time.Second)
	if n, err := pipeline.Trim(ctx, c, s, time.Hour, later); err != nil || n != 0 {
		t.Fatalf("Trim without a group: %d, %v; want 0", n, err)
	}
	if n, err := pipeline.TrimOutput(ctx, c, s, time.Hour, time.Now()); err != nil || n != 0 {
		t.Fatalf("TrimOutput within retention: %d, %v; want 0", n, err)
	}
	if n, err := pipeline.TrimOutput(ctx, c, s, time.Hour, later); err != nil || n != 10 {
		t.Fatalf("TrimOutput past retention: %d, %v; want 10", n, err)
	}
	if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: s, Fields: []string{"n", "1"}}); err != nil {
		t.Fatal(err)
	}
	if err := pipeline.CreateGroup(ctx, c, s, "webhook"); err != nil {
		t.Fatal(err)
	}
	if n, err := pipeline.TrimOutput(ctx, c, s, time.Hour, later); err != nil || n != 0 {
		t.Fatalf("TrimOutput with a group that read nothing: %d, %v; want 0", n, err)
	}
}

// TailResults reads the events of every partition after from, one by one,
// and passes a malformed entry over.
func TestTailResults(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	ev := func(dev int64) pipeline.ResultEvent {
		return pipeline.ResultEvent{ID: pipeline.ResultID("c", "", dev, pipeline.OutcomeSent), Campaign: "c", App: "a", UserID: dev * 5000,
			Platform: "ios", Token: "t", Outcome: pipeline.OutcomeSent, AtMs: 1}
	}
	var msgs []pipeline.Message
	for p := range keys.Partitions {
		msgs = append(msgs, pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, p), Fields: pipeline.ResultFields(ev(int64(2*p)), ev(int64(2*p+1)))})
	}
	msgs = append(msgs, pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, 0), Fields: []string{"x", "y"}})
	if _, err := pipeline.Emit(ctx, c, msgs...); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	var malformed []string
	from, err := pipeline.ParseBound("0", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Done once every event and the malformed entry are seen, whichever
	// comes last.
	seen := func() {
		if len(got) == 2*keys.Partitions && len(malformed) > 0 {
			cancel()
		}
	}
	err = pipeline.TailResults(ctx, c, keys, from, true, zerolog.Nop(), func(e pipeline.ResultEvent) error {
		got[e.ID] = true
		seen()
		return nil
	}, func(entry string, err error) { malformed = append(malformed, entry); seen() })
	if err != nil || len(got) != 2*keys.Partitions {
		t.Errorf("tail: %d events, %v; want %d", len(got), err, 2*keys.Partitions)
	}
	if len(malformed) != 1 || !strings.HasPrefix(malformed[0], keys.Stream(pipeline.StreamResults, 0)+" ") {
		t.Errorf("malformed entries named: %q, want the one of partition 0", malformed)
	}
}

// TailResults passes history on in the order it was written, not partition
// by partition, however many reads a partition takes.
func TestTailResultsInTimeOrder(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	const entries = 250 // more than a read takes of one partition
	for k := range entries {
		ev := pipeline.ResultEvent{ID: pipeline.ResultID("order", "", int64(k), pipeline.OutcomeSent), Campaign: "order", App: "a",
			UserID: int64(k), Platform: "ios", Token: "t", Outcome: pipeline.OutcomeSent, AtMs: 1}
		// Most entries in partition 0, the rest spread: a partition read
		// to its end early must not let the others' later entries by.
		p := 0
		if k%4 == 3 {
			p = 1 + k%(keys.Partitions-1)
		}
		if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, p), Fields: pipeline.ResultFields(ev)}); err != nil {
			t.Fatal(err)
		}
		// Ids order entries of different partitions to the millisecond.
		time.Sleep(time.Millisecond)
	}
	from, err := pipeline.ParseBound("0", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	err = pipeline.TailResults(ctx, c, keys, from, true, zerolog.Nop(), func(e pipeline.ResultEvent) error {
		if e.Campaign == "order" {
			got = append(got, e.UserID)
		}
		if len(got) == entries {
			cancel()
		}
		return nil
	}, nil)
	if err != nil || len(got) != entries {
		t.Fatalf("tail: %d events, %v; want %d", len(got), err, entries)
	}
	for i, u := range got {
		if u != int64(i) {
			t.Fatalf("event %d is user %d, want %d (in the order written): %v", i, u, i, got[max(0, i-3):min(len(got), i+4)])
		}
	}
}

// Not following, TailResults passes on every event the stream held when it
// started, in order, however many reads a partition takes, and then returns
// by itself: what it reads while it runs (here written by its first call
// of fn, into a partition it has read and into one that was empty) is not
// passed on. A partition empty at the start is read through at once.
func TestTailResultsWithoutFollow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	ev := func(campaign string, k int64) pipeline.ResultEvent {
		return pipeline.ResultEvent{ID: pipeline.ResultID(campaign, "", k, pipeline.OutcomeSent), Campaign: campaign, App: "a",
			UserID: k, Platform: "ios", Token: "t", Outcome: pipeline.OutcomeSent, AtMs: 1}
	}
	const entries = 250 // more than a read takes of partition 0
	empty := keys.Partitions - 1
	for k := range entries {
		p := 0
		if k%4 == 3 {
			p = 1 + k%(keys.Partitions-2) // never the empty one
		}
		if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, p), Fields: pipeline.ResultFields(ev("held", int64(k)))}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // ids order entries of different partitions to the millisecond
	}
	from, err := pipeline.ParseBound("0", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	late := 0
	err = pipeline.TailResults(ctx, c, keys, from, false, zerolog.Nop(), func(e pipeline.ResultEvent) error {
		if e.Campaign != "held" {
			late++
			return nil
		}
		if len(got) == 0 {
			for _, p := range []int{0, 1, empty} {
				if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, p), Fields: pipeline.ResultFields(ev("late", int64(p)))}); err != nil {
					return err
				}
			}
		}
		got = append(got, e.UserID)
		return nil
	}, nil)
	if err != nil || ctx.Err() != nil {
		t.Fatalf("tail: %v (context: %v); want it to return by itself", err, ctx.Err())
	}
	if late > 0 {
		t.Errorf("%d events written after the start passed on", late)
	}
	if len(got) != entries {
		t.Fatalf("%d events, want %d", len(got), entries)
	}
	for i, u := range got {
		if u != int64(i) {
			t.Fatalf("event %d is user %d, want %d (in the order written)", i, u, i)
		}
	}
}

// ResultsOf finds one message's events from its creation on, among other
// campaigns' written before and after it, and stops as soon as it has them
// all; short of them, it says so, and it reads no more than its cap.
func TestResultsOf(t *testing.T) {
	ctx := context.Background()
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	ev := func(message string, k int64) pipeline.ResultEvent {
		return pipeline.ResultEvent{ID: pipeline.ResultID("", message, k, pipeline.OutcomeSent), Message: message, App: "a",
			UserID: k, Platform: "ios", Token: "t", Outcome: pipeline.OutcomeSent, AtMs: 1}
	}
	// An entry is one mark call's: one message's events. Each a
	// millisecond after the last, so ids order them across partitions.
	emit := func(p int, evs ...pipeline.ResultEvent) {
		t.Helper()
		if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, p), Fields: pipeline.ResultFields(evs...)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	emit(0, ev("m1", 9)) // before its creation: another m1 of another day, say
	time.Sleep(20 * time.Millisecond)
	created := time.Now()
	// m1's five devices over three partitions, between other messages'.
	emit(1, ev("other", 1))
	emit(1, ev("m1", 1), ev("m1", 2))
	emit(2, ev("other", 2))
	emit(3, ev("m1", 3))
	emit(0, ev("other", 3), ev("other", 4))
	emit(5, ev("m1", 4), ev("m1", 5))
	emit(5, ev("other", 5))
	tests := []struct {
		name      string
		want, cap int
		found     []int64
		complete  bool
	}{
		{"all of them", 5, 1000, []int64{1, 2, 3, 4, 5}, true},
		{"more than there are", 6, 1000, []int64{1, 2, 3, 4, 5}, false},
		{"read up to its cap", 5, 4, []int64{1, 2}, false}, // other 1, m1 1 and 2, other 2
		{"none wanted", 0, 1000, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, complete, err := pipeline.ResultsOf(ctx, c, keys, "m1", created.Add(-5*time.Millisecond), tt.want, tt.cap)
			var found []int64
			for _, e := range evs {
				found = append(found, e.UserID)
			}
			slices.Sort(found)
			if err != nil || complete != tt.complete || !slices.Equal(found, tt.found) {
				t.Errorf("ResultsOf: %v, complete %v, %v; want %v, complete %v", found, complete, err, tt.found, tt.complete)
			}
		})
	}
}

// A device that failed and was sent later (dlq retry) counts once in the
// outcomes but has two events: ResultsOf returns both, so a page shows it
// sent, not failed.
func TestResultsOfFollowsARetry(t *testing.T) {
	ctx := context.Background()
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	ev := func(message string, k int64, outcome string) pipeline.ResultEvent {
		return pipeline.ResultEvent{ID: pipeline.ResultID("", message, k, outcome), Message: message, App: "a",
			UserID: k, Platform: "ios", Token: "t", Outcome: outcome, AtMs: 1}
	}
	created := time.Now().Add(-time.Second)
	for i, evs := range [][]pipeline.ResultEvent{
		{ev("m2", 1, pipeline.OutcomeFailed)},
		{ev("other", 1, pipeline.OutcomeSent)},
		{ev("m2", 1, pipeline.OutcomeSent)}, // the retry
	} {
		if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, i), Fields: pipeline.ResultFields(evs...)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	evs, complete, err := pipeline.ResultsOf(ctx, c, keys, "m2", created, 1, 1000)
	var got []string
	for _, e := range evs {
		got = append(got, e.Outcome)
	}
	if err != nil || !complete || !slices.Equal(got, []string{pipeline.OutcomeFailed, pipeline.OutcomeSent}) {
		t.Errorf("ResultsOf: %v, complete %v, %v; want the failure and the retry's send", got, complete, err)
	}
}

// Redis restarted under a running tail: the tail says it is unreachable,
// waits, says when it answers again and reads on from where it was, every
// event once. Before, the tail failed or waited for as long as the outage
// lasted, saying nothing.
func TestTailResultsAcrossARedisRestart(t *testing.T) {
	t.Parallel() // mostly waiting out a restart, on a Redis of its own
	redis := pipelinetest.RedisT(t, pipelinetest.RedisOptions{AOF: true})
	c, err := pipeline.NewRedis(redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// Every write survives the restart: what a restart loses to fsync's
	// second is not what this test is about.
	if err := c.Do(t.Context(), c.B().ConfigSet().ParameterValue().ParameterValue("appendfsync", "always").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	keys := testKeys()
	emit := func(from, to int) {
		t.Helper()
		for k := from; k < to; k++ {
			ev := pipeline.ResultEvent{ID: pipeline.ResultID("r", "", int64(k), pipeline.OutcomeSent), Campaign: "r", App: "a",
				UserID: int64(k), Platform: "ios", Token: "t", Outcome: pipeline.OutcomeSent, AtMs: 1}
			if _, err := pipeline.Emit(t.Context(), c, pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, k%keys.Partitions), Fields: pipeline.ResultFields(ev)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var logs pipelinetest.Logs
	var mu sync.Mutex
	got := map[int64]int{}
	count := func() (events, repeats int) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range got {
			events += n
			repeats += n - 1
		}
		return events, repeats
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- pipeline.TailResults(ctx, c, keys, pipeline.Bound{}, true, zerolog.New(&logs), func(e pipeline.ResultEvent) error {
			mu.Lock()
			defer mu.Unlock()
			got[e.UserID]++
			return nil
		}, nil)
	}()
	time.Sleep(500 * time.Millisecond) // past its start: new events only
	emit(0, 20)
	pipelinetest.Eventually(t, 10*time.Second, "the first events tailed", func() bool { n, _ := count(); return n == 20 })

	if err := redis.Kill(); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 30*time.Second, "the tail says Redis is unreachable", func() bool {
		return strings.Contains(logs.String(), "Redis unreachable: the tail waits")
	})
	if err := redis.Restart(); err != nil {
		t.Fatal(err)
	}
	emit(20, 50)
	pipelinetest.Eventually(t, 30*time.Second, "every event tailed", func() bool { n, _ := count(); return n >= 50 })
	pipelinetest.Eventually(t, 30*time.Second, "the tail says Redis answers again", func() bool {
		return strings.Contains(logs.String(), `"message":"Redis answers again; the tail goes on`)
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("tail: %v", err)
	}
	if n, repeats := count(); n != 50 || repeats != 0 || len(got) != 50 {
		t.Errorf("%d events of %d users, %d repeats: want 50 users once each", n, len(got), repeats)
	}
}
