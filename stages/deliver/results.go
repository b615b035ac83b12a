package deliver

import (
	"strconv"

	"github.com/pushpipe/pushpipe/pipeline"
)

// appendResults appends the device part of markScript's arguments for marks
// of one outcome: how many, then per device its id and its result event's
// JSON (pipeline.ResultEvent), which the script writes if it marks the
// device for the first time.
func appendResults(args []string, c *campaign, atMs int64, marks []markReq) []string {
	args = append(args, strconv.Itoa(len(marks)))
	ev := pipeline.ResultEvent{Campaign: c.ID, App: c.App, AtMs: atMs}
	prefix := pipeline.ResultIDPrefix(c.ID, "")
	var buf []byte
	for _, m := range marks {
		id := strconv.FormatInt(m.d.id, 10)
		ev.ID, ev.UserID, ev.Platform, ev.Token, ev.Reason = prefix+id, m.d.user, string(m.d.platform), m.d.token, m.reason
		ev.Outcome = counterOf(m.outcome) // the counters are named as the outcomes
		buf = ev.AppendJSON(buf[:0])
		args = append(args, id, string(buf))
	}
	return args
}
