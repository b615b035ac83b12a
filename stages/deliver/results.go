package deliver

import (
	"unsafe"

	"github.com/pushpipe/pushpipe/pipeline"
)

// resultLines is the lines of the marks' result events
// (pipeline.AppendResultLine): markScript writes them, under the campaign's
// header, if it marks the devices for the first time. They are a campaign's
// whole token list over its run (1.5 GB for 12M devices), so they are built
// in one buffer of the right size and handed to the script without a copy:
// the buffer is never written again, and the client only reads its
// arguments.
func resultLines(marks []markReq) string {
	n := 0
	for _, m := range marks {
		n += len(m.d.token) + len(m.reason) + len(m.d.platform) + 48 // two ids, an outcome, tabs
	}
	b := make([]byte, 0, n)
	for _, m := range marks {
		b = pipeline.AppendResultLine(b, m.d.id, m.d.user, string(m.d.platform), counterOf(m.outcome), m.d.token, m.reason)
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// resultHeader is the header of the campaign's results entries recorded at
// atMs: direct messages' events name the message, not a campaign.
func (c *campaign) resultHeader(atMs int64) []string {
	if c.message {
		return pipeline.ResultHeader("", c.ID, c.App, atMs)
	}
	return pipeline.ResultHeader(c.ID, "", c.App, atMs)
}
