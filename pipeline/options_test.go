package pipeline_test

import (
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
)

// ClaimIdle is never below MinClaimIdle, the floor of pushpipe's
// --claim-idle, for a library caller either; what is derived from it
// follows the raised value. Before, 1ns or 1µs asked XAUTOCLAIM for entries
// idle 0ms (every pending entry, live consumers' batches in progress too)
// and left RetryFor at 0 or 500ns.
func TestClaimIdleFloor(t *testing.T) {
	type derived struct{ ClaimIdle, RetryFor, KeepEvery, StuckAfter time.Duration }
	floor := derived{pipeline.MinClaimIdle, pipeline.MinClaimIdle / 2, pipeline.MinClaimIdle / 3, time.Minute}
	tests := []struct {
		name string
		give pipeline.Options
		want derived
	}{
		{"default", pipeline.Options{}, derived{30 * time.Second, 15 * time.Second, 250 * time.Millisecond, time.Minute}},
		{"1ns", pipeline.Options{ClaimIdle: time.Nanosecond}, floor},
		{"1µs", pipeline.Options{ClaimIdle: time.Microsecond}, floor},
		{"1ms", pipeline.Options{ClaimIdle: time.Millisecond}, floor},
		{"just under", pipeline.Options{ClaimIdle: pipeline.MinClaimIdle - 1}, floor},
		{"at the floor", pipeline.Options{ClaimIdle: pipeline.MinClaimIdle}, floor},
		{"above it", pipeline.Options{ClaimIdle: 300 * time.Millisecond}, derived{300 * time.Millisecond, 150 * time.Millisecond, 100 * time.Millisecond, time.Minute}},
		{"tiny, RetryFor set", pipeline.Options{ClaimIdle: time.Nanosecond, RetryFor: time.Second}, derived{pipeline.MinClaimIdle, time.Second, pipeline.MinClaimIdle / 3, time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.give.Stage, tt.give.Stream = "claim", "claim"
			o := tt.give.Effective(pipeline.NewKeys("t", 1))
			if got := (derived{o.ClaimIdle, o.RetryFor, o.KeepEvery, o.StuckAfter}); got != tt.want {
				t.Errorf("ClaimIdle %v: got ClaimIdle, RetryFor, KeepEvery, StuckAfter %v, want %v", tt.give.ClaimIdle, got, tt.want)
			}
		})
	}
}
