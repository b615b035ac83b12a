package deliver

import (
	"github.com/pushpipe/pushpipe/pipeline"
)

// appendResults appends the lines of the marks' result events
// (pipeline.AppendResultLine) to b: markScript writes them, under the
// campaign's header, if it marks the devices for the first time.
func appendResults(b []byte, c *campaign, marks []markReq) []byte {
	for _, m := range marks {
		b = pipeline.AppendResultLine(b, m.d.id, m.d.user, string(m.d.platform), counterOf(m.outcome), m.d.token, m.reason)
	}
	return b
}

// resultHeader is the header of the campaign's results entries recorded at
// atMs: direct messages' events name the message, not a campaign.
func (c *campaign) resultHeader(atMs int64) []string {
	if c.message {
		return pipeline.ResultHeader("", c.ID, c.App, atMs)
	}
	return pipeline.ResultHeader(c.ID, "", c.App, atMs)
}
