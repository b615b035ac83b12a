package pipeline_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
)

// Result events survive their entry, their JSON is encoding/json's, and a
// malformed entry is refused with what is wrong.
func TestResultFields(t *testing.T) {
	give := []pipeline.ResultEvent{
		{ID: pipeline.ResultID("c9", "", 42), Campaign: "c9", App: "a", UserID: 7, Platform: "ios", Token: "tok",
			Outcome: pipeline.OutcomeInvalid, Reason: "Unregistered \"quoted\"\n\x01 é \xff", AtMs: 1700000000000},
		{ID: pipeline.ResultID("", "m1", 43), Message: "m1", App: "a", UserID: 8, Platform: "android", Token: "t2",
			Outcome: pipeline.OutcomeSent, AtMs: 1700000000001},
	}
	f := pipeline.ResultFields(give...)
	got, err := pipeline.ParseResults(map[string]string{f[0]: f[1]})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(give)
	var wantBack []pipeline.ResultEvent
	json.Unmarshal(want, &wantBack)
	if !reflect.DeepEqual(got, wantBack) {
		t.Errorf("round trip:\n%+v\nwant\n%+v", got, wantBack)
	}
	if f[1] != string(want) {
		t.Errorf("JSON\n%s\nwant encoding/json's\n%s", f[1], want)
	}
	if give[0].ID != "c:c9:42" || give[1].ID != "m:m1:43" {
		t.Errorf("ids %q, %q", give[0].ID, give[1].ID)
	}
	tests := []struct {
		name string
		give map[string]string
		want string
	}{
		{"no field", map[string]string{"x": "1"}, "no events field"},
		{"not json", map[string]string{pipeline.FieldEvents: "[{"}, "not a JSON array"},
		{"no id", map[string]string{pipeline.FieldEvents: `[{"campaign":"c","outcome":"sent","at_ms":1}]`}, "event 0: no id"},
		{"bad outcome", map[string]string{pipeline.FieldEvents: `[{"id":"x","campaign":"c","outcome":"lost","at_ms":1}]`}, `outcome "lost"`},
		{"both", map[string]string{pipeline.FieldEvents: `[{"id":"x","campaign":"c","message":"m","outcome":"sent","at_ms":1}]`}, "exactly one"},
		{"no time", map[string]string{pipeline.FieldEvents: `[{"id":"x","campaign":"c","outcome":"sent"}]`}, "at_ms"},
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
