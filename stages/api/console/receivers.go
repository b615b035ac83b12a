package console

import (
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// receiverRow is one webhook group's receiver on the pipeline page, as
// `pushpipe status` says it (webhook.ReadReceivers, the one reader of
// both): paused until when, or failing since when with its last error,
// and the dead letters its group left. Only status said so before: in the
// console the group read idle, or running, its events waiting.
type receiverRow struct {
	Group       string
	PausedUntil time.Time // zero: not paused
	Failing     *webhook.Failure
	Dead        int64 // its group's dead letters (of the first dlqCountCap)
}

// receiverRows are the results groups of streams, in their order, with
// what their processes recorded; dead are the dead letters read.
func receiverRows(streams []pipeline.StreamStatus, recv webhook.Receivers, dead []pipeline.DeadLetter, now time.Time) []receiverRow {
	failing := map[string]*webhook.Failure{}
	for _, f := range recv.FailingNow(streams) {
		failing[f.Group] = &f
	}
	perGroup := map[string]int64{}
	for _, l := range dead {
		if l.Name == pipeline.StreamResults {
			perGroup[l.Group]++
		}
	}
	var out []receiverRow
	for _, g := range webhook.ResultsGroups(streams) {
		row := receiverRow{Group: g, Failing: failing[g], Dead: perGroup[g]}
		if left, ok := recv.Paused[g]; ok {
			// Until a second, rounded up: rounded down, it read as over
			// while the pause still held.
			row.PausedUntil = now.Add(left).Add(time.Second - 1).Truncate(time.Second)
		}
		out = append(out, row)
	}
	return out
}
