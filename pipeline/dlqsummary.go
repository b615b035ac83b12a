package pipeline

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"
)

// DLQReason is how many dead letters one stage gave up on for one reason.
type DLQReason struct {
	Stage  string    `json:"stage"`          // the stage, "webhook/<group>" for a receiver of its own
	Reason string    `json:"reason"`         // the dead letter's error (or why it is malformed), as stored, up to ReceiverSaid
	Said   string    `json:"said,omitempty"` // what the newest letter's receiver answered (after ReceiverSaid)
	Count  int64     `json:"count"`
	Oldest time.Time `json:"oldest"`
	Newest time.Time `json:"newest"` // recent: the cause may still be at work
}

// ReceiverSaid begins the part of an error that quotes a remote party's
// answer (stages/webhook: a refusing receiver's body). Summary groups dead
// letters by the text before it: a receiver's body carries request ids and
// times, and each letter of one outage was a row of its own.
const ReceiverSaid = "; the receiver said: "

// DLQSummary is the dead letters matching a filter, counted by stage and
// reason.
type DLQSummary struct {
	Reasons []DLQReason // most frequent first
	Read    int64       // dead letters counted: fewer than matched when max cut the scan
	Capped  bool        // more matched than max
}

// Summary counts the dead letters matching f (its Limit aside) by stage
// and reason, most frequent first, reading at most max of them, oldest
// first (0: all). A reason is the error text the runner stored
// (DeadLetter.Error), grouped as it is: a dead letter carries no reason
// code, and guessing which part of a message is an id would merge causes
// that differ. The runner's own reasons ("claimed for delivery 11, past
// --max-deliveries 10; last error: ...") and the errors stages return for a whole class of
// input already read the same for every entry of that cause.
func (q *DLQ) Summary(ctx context.Context, f DLQFilter, max int) (DLQSummary, error) {
	var s DLQSummary
	at := map[[2]string]int{}
	f.Limit = 0
	err := q.scan(ctx, f, func(d DeadLetter) bool {
		if max > 0 && s.Read >= int64(max) {
			s.Capped = true // one more matched than max
			return false
		}
		reason, said, _ := strings.Cut(strings.Join(strings.Fields(cmp.Or(d.Malformed, d.Error)), " "), ReceiverSaid)
		k := [2]string{stageLabel(d), reason}
		i, ok := at[k]
		if !ok {
			i = len(s.Reasons)
			at[k] = i
			s.Reasons = append(s.Reasons, DLQReason{Stage: k[0], Reason: k[1], Oldest: d.At})
		}
		r := &s.Reasons[i]
		r.Count++
		r.Newest = d.At
		r.Said = said // oldest first: the newest's stays
		s.Read++
		return true
	})
	slices.SortStableFunc(s.Reasons, func(a, b DLQReason) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Stage, b.Stage))
	})
	return s, err
}

// stageLabel is the stage that gave up on d: the one that reads its stream,
// with the group when it is not the stage's own (a webhook receiver).
func stageLabel(d DeadLetter) string {
	stage := cmp.Or(StageOf(d.Name), d.Name, d.Stream)
	if d.Group != "" && d.Group != stage {
		return stage + "/" + d.Group
	}
	return stage
}
