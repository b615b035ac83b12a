package deliver

import (
	"slices"
	"sync"
	"unsafe"

	"github.com/pushpipe/pushpipe/pipeline"
)

// resultRecords is the records of the marks' result events
// (pipeline.ResultRecords), built over buf (nil: a new buffer): markScript
// writes them, under the campaign's header, if it marks the devices for the
// first time. They are a campaign's whole token list over its run (0.8 GB
// for 12M devices), so they are built in one buffer of the right size and
// handed to the script without a copy (recordsArg).
func resultRecords(marks []markReq, buf []byte) []byte {
	n := 0
	for _, m := range marks {
		n += pipeline.ResultRecordMax(len(m.d.platform), len(m.d.token), len(m.reason))
	}
	r := pipeline.ResultRecordsIn(slices.Grow(buf[:0], n))
	for _, m := range marks {
		r.Add(m.d.id, m.d.user, string(m.d.platform), counterOf(m.outcome), m.d.token, m.reason)
	}
	return r.Bytes()
}

// recordsArg is records as a script argument, without a copy: the client
// only reads its arguments, and the buffer is not written again until the
// call has its answer (recordBufs).
func recordsArg(records []byte) string {
	return unsafe.String(unsafe.SliceData(records), len(records))
}

// recordBufs keeps the buffers of a marker's records (resultRecords) from
// one mark call to the next. A call of the 10M bench's is ~27 KB of records
// for ~440 devices, in a buffer sized for the longest (~57 KB): made new for
// every call, that was 1.6 GB of garbage over its 12M devices, each buffer
// zeroed, then collected (BenchmarkMarkRecords). A buffer comes back (put)
// only once the call that sent it has its answer: the client has written it
// then, and reads it no more.
type recordBufs struct{ pool sync.Pool }

// get is a buffer to build records in: empty, of any capacity (nil when
// none is kept, or r is nil).
func (r *recordBufs) get() []byte {
	if r == nil {
		return nil
	}
	if b, ok := r.pool.Get().(*[]byte); ok {
		return *b
	}
	return nil
}

// put takes back a buffer of get's. A nil r is a no-op.
func (r *recordBufs) put(b []byte) {
	if r == nil || cap(b) == 0 {
		return
	}
	b = b[:0]
	r.pool.Put(&b)
}

// resultHeader is the header of the campaign's results entries recorded at
// atMs: direct messages' events name the message, not a campaign.
func (c *campaign) resultHeader(atMs int64) []string {
	if c.message {
		return pipeline.ResultHeader("", c.ID, c.App, atMs)
	}
	return pipeline.ResultHeader(c.ID, "", c.App, atMs)
}
