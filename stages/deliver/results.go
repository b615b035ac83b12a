package deliver

import (
	"unsafe"

	"github.com/pushpipe/pushpipe/pipeline"
)

// resultRecords is the records of the marks' result events
// (pipeline.ResultRecords): markScript writes them, under the campaign's
// header, if it marks the devices for the first time. They are a campaign's
// whole token list over its run (0.8 GB for 12M devices), so they are built
// in one buffer of the right size and handed to the script without a copy:
// the buffer is never written again, and the client only reads its
// arguments.
func resultRecords(marks []markReq) string {
	n := 0
	for _, m := range marks {
		n += pipeline.ResultRecordMax(len(m.d.platform), len(m.d.token), len(m.reason))
	}
	r := pipeline.NewResultRecords(n)
	for _, m := range marks {
		r.Add(m.d.id, m.d.user, string(m.d.platform), counterOf(m.outcome), m.d.token, m.reason)
	}
	b := r.Bytes()
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
