package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
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
			{ID: pipeline.ResultID("c9", "", 42), Campaign: "c9", App: "a", UserID: 7, Platform: "ios", Token: "tok",
				Outcome: pipeline.OutcomeInvalid, Reason: "Unregistered \"quoted\" é \xff", AtMs: 1700000000000},
			{ID: pipeline.ResultID("c9", "", 43), Campaign: "c9", App: "a", UserID: 8, Platform: "android", Token: "t2",
				Outcome: pipeline.OutcomeSent, AtMs: 1700000000000},
		}},
		{"message", []pipeline.ResultEvent{
			{ID: pipeline.ResultID("", "m1", 1), Message: "m1", App: "a", Platform: "android", Token: "t3",
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
	if id := pipeline.ResultID("c9", "", 42); id != "c:c9:42" {
		t.Errorf("campaign event id %q", id)
	}
	if id := pipeline.ResultID("", "m1", 43); id != "m:m1:43" {
		t.Errorf("message event id %q", id)
	}
}

// A reason's control characters become spaces (lines stay lines); the
// skip field drops the repeats of a redone mark.
func TestResultLines(t *testing.T) {
	f := fieldMap(pipeline.ResultFields(
		pipeline.ResultEvent{ID: "c:c:1", Campaign: "c", App: "a", Platform: "ios", Token: "t", Outcome: "failed", Reason: "a\tb\nc\x01", AtMs: 5},
		pipeline.ResultEvent{ID: "c:c:2", Campaign: "c", App: "a", Platform: "ios", Token: "t", Outcome: "sent", AtMs: 5},
		pipeline.ResultEvent{ID: "c:c:3", Campaign: "c", App: "a", Platform: "ios", Token: "t", Outcome: "sent", AtMs: 5},
	))
	f[pipeline.FieldSkip] = "1,3"
	got, err := pipeline.ParseResults(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "c:c:2" {
		t.Errorf("with 1 and 3 skipped: %+v, want device 2 alone", got)
	}
	delete(f, pipeline.FieldSkip)
	got, err = pipeline.ParseResults(f)
	if err != nil || len(got) != 3 || got[0].Reason != "a b c " {
		t.Errorf("%+v, %v; want 3 events, the first with reason %q", got, err, "a b c ")
	}
}

// A malformed results entry is refused with what is wrong: the webhook
// dead-letters it with that reason.
func TestResultsMalformed(t *testing.T) {
	ok := "5\t7\tios\tsent\ttok\t\n"
	tests := []struct {
		name string
		give map[string]string
		want string
	}{
		{"no field", map[string]string{"x": "1"}, "no events field"},
		{"no newline", map[string]string{pipeline.FieldCampaign: "c", pipeline.FieldAtMs: "1", pipeline.FieldEvents: "5\t7\tios\tsent\ttok\t"}, "line 0 does not end"},
		{"few fields", map[string]string{pipeline.FieldCampaign: "c", pipeline.FieldAtMs: "1", pipeline.FieldEvents: ok + "5\t7\tios\n"}, "line 1 has 3 fields"},
		{"bad device", map[string]string{pipeline.FieldCampaign: "c", pipeline.FieldAtMs: "1", pipeline.FieldEvents: "x\t7\tios\tsent\ttok\t\n"}, `device id "x"`},
		{"bad user", map[string]string{pipeline.FieldCampaign: "c", pipeline.FieldAtMs: "1", pipeline.FieldEvents: "5\ty\tios\tsent\ttok\t\n"}, `user id "y"`},
		{"bad outcome", map[string]string{pipeline.FieldCampaign: "c", pipeline.FieldAtMs: "1", pipeline.FieldEvents: "5\t7\tios\tlost\ttok\t\n"}, `outcome "lost"`},
		{"both", map[string]string{pipeline.FieldCampaign: "c", pipeline.FieldMessage: "m", pipeline.FieldAtMs: "1", pipeline.FieldEvents: ok}, "exactly one"},
		{"neither", map[string]string{pipeline.FieldAtMs: "1", pipeline.FieldEvents: ok}, "exactly one"},
		{"no time", map[string]string{pipeline.FieldCampaign: "c", pipeline.FieldEvents: ok}, "at_ms"},
		{"bad skip", map[string]string{pipeline.FieldCampaign: "c", pipeline.FieldAtMs: "1", pipeline.FieldEvents: ok, pipeline.FieldSkip: "5,x"}, `skip holds "x"`},
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
		return pipeline.ResultEvent{ID: pipeline.ResultID("c", "", dev), Campaign: "c", App: "a", UserID: dev * 5000,
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
	err := pipeline.TailResults(ctx, c, keys, "0", func(e pipeline.ResultEvent) error {
		got[e.ID] = true
		if len(got) == 2*keys.Partitions {
			cancel()
		}
		return nil
	})
	if err != nil || len(got) != 2*keys.Partitions {
		t.Errorf("tail: %d events, %v; want %d", len(got), err, 2*keys.Partitions)
	}
}
