package pipeline_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
)

// A result event survives its stream fields; a malformed entry is refused
// with what is wrong.
func TestResultEventFields(t *testing.T) {
	give := pipeline.ResultEvent{ID: pipeline.ResultID("c9", "", 42), Campaign: "c9", App: "a", UserID: 7,
		Platform: "ios", Token: "tok", Outcome: pipeline.OutcomeInvalid, Reason: "Unregistered", AtMs: 1700000000000}
	f := give.Fields()
	m := map[string]string{}
	for i := 0; i < len(f); i += 2 {
		m[f[i]] = f[i+1]
	}
	got, err := pipeline.ParseResultEvent(m)
	if err != nil || got != give {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, give)
	}
	if give.ID != "c:c9:42" || pipeline.ResultID("", "m1", 42) != "m:m1:42" {
		t.Errorf("ids %q, %q", give.ID, pipeline.ResultID("", "m1", 42))
	}
	tests := []struct {
		name string
		drop string
		set  [2]string
		want string
	}{
		{name: "no id", drop: pipeline.FieldID, want: "no id"},
		{name: "bad outcome", set: [2]string{pipeline.FieldOutcome, "lost"}, want: `outcome "lost"`},
		{name: "bad user", set: [2]string{pipeline.FieldUser, "x"}, want: "user"},
		{name: "no campaign", drop: pipeline.FieldCampaign, want: "exactly one of campaign and message"},
		{name: "both", set: [2]string{pipeline.FieldMessage, "m"}, want: "exactly one"},
		{name: "bad time", set: [2]string{pipeline.FieldAtMs, ""}, want: "at_ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := map[string]string{}
			for k, v := range m {
				bad[k] = v
			}
			delete(bad, tt.drop)
			if tt.set[0] != "" {
				bad[tt.set[0]] = tt.set[1]
			}
			_, err := pipeline.ParseResultEvent(bad)
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
