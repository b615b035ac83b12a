package pipeline_test

import (
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
)

// FieldText reads the binary fields of a dead letter (id batches, result
// events) and counts in words that fit the count: "1 events: user 5 ios
// sent" read wrong.
func TestDeadLetterFieldText(t *testing.T) {
	ev := func(user int64, outcome, reason string) pipeline.ResultEvent {
		return pipeline.ResultEvent{ID: pipeline.ResultID("c1", "", user, outcome), Campaign: "c1", App: "a", UserID: user,
			Platform: "ios", Token: "t", Outcome: outcome, Reason: reason, AtMs: 1}
	}
	results := func(evs ...pipeline.ResultEvent) map[string]string {
		pairs, fields := pipeline.ResultFields(evs...), map[string]string{}
		for i := 0; i+1 < len(pairs); i += 2 {
			fields[pairs[i]] = pairs[i+1]
		}
		return fields
	}
	tests := []struct {
		name   string
		fields map[string]string
		field  string
		want   string
	}{
		{"one event", results(ev(5, pipeline.OutcomeSent, "")), pipeline.FieldEvents, "1 event: user 5 ios sent"},
		{"two events", results(ev(5, pipeline.OutcomeSent, ""), ev(6, pipeline.OutcomeFailed, "BadDeviceToken")), pipeline.FieldEvents,
			"2 events: user 5 ios sent; user 6 ios failed (BadDeviceToken)"},
		{"users", map[string]string{pipeline.FieldUsers: pipeline.EncodeIDs([]int64{3, 9})}, pipeline.FieldUsers, "2 user ids: 3 9"},
		{"muted, past ten", map[string]string{pipeline.FieldMuted: pipeline.EncodeIDs([]int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})},
			pipeline.FieldMuted, "11 user ids: 1 2 3 4 5 6 7 8 9 10 …"},
		{"text", map[string]string{pipeline.FieldCampaign: "c1"}, pipeline.FieldCampaign, "c1"},
		{"events that do not decode", map[string]string{pipeline.FieldEvents: "\x01\x02"}, pipeline.FieldEvents, `"\x01\x02"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (pipeline.DeadLetter{Fields: tt.fields}).FieldText(tt.field); got != tt.want {
				t.Errorf("FieldText(%s) = %q, want %q", tt.field, got, tt.want)
			}
		})
	}
}
