package webhook

import (
	"context"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// Receivers is what the webhook processes recorded of their receivers, by
// group: `pushpipe status` and the console's pipeline page both read it
// here (ReadReceivers), so they cannot tell an operator two stories.
type Receivers struct {
	// Failing are the recorded failures (Failures), a stopped group's
	// stale one included: FailingNow leaves those out.
	Failing map[string]Failure
	// Paused is what is left of each paused receiver's pause (Pauses).
	Paused map[string]time.Duration
}

// ReadReceivers reads the failures and the pauses of the results groups of
// streams (pipeline.Status's answer, which must include results).
func ReadReceivers(ctx context.Context, c rueidis.Client, keys pipeline.Keys, streams []pipeline.StreamStatus) (Receivers, error) {
	var r Receivers
	var err error
	if r.Failing, err = Failures(ctx, c, keys); err != nil {
		return r, err
	}
	r.Paused, err = Pauses(ctx, c, keys, ResultsGroups(streams))
	return r, err
}

// FailingNow are the failures of the results groups a process still runs,
// in streams' order: a stopped group's record is stale (its process died
// failing), and its state says it stopped.
func (r Receivers) FailingNow(streams []pipeline.StreamStatus) []Failure {
	var out []Failure
	for _, s := range streams {
		if s.Name != pipeline.StreamResults {
			continue
		}
		for _, g := range s.Groups {
			if f, ok := r.Failing[g.Name]; ok && g.State != pipeline.StateStopped {
				out = append(out, f)
			}
		}
	}
	return out
}

// ResultsGroups are the consumer groups of results in streams: the webhook
// receivers.
func ResultsGroups(streams []pipeline.StreamStatus) []string {
	var out []string
	for _, s := range streams {
		if s.Name != pipeline.StreamResults {
			continue
		}
		for _, g := range s.Groups {
			out = append(out, g.Name)
		}
	}
	return out
}
