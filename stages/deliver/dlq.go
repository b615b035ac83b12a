package deliver

import (
	"context"
	"fmt"
	"strconv"

	"github.com/pushpipe/pushpipe/pipeline"
)

// deadEntry is something deliver gives up on: a malformed entry, or the
// users of a campaign whose retry budget is spent.
type deadEntry struct {
	id         string
	fields     map[string]string
	err        error
	deliveries int64
}

// deadLetter writes entries to the DLQ stream with the runner's fields, so
// `pushpipe dlq` lists and requeues them like any other. It runs before the
// step that settles them: a crash in between repeats a dead letter, never
// loses one.
func (h *Handler) deadLetter(ctx context.Context, stream string, entries []deadEntry) error {
	if len(entries) == 0 {
		return nil
	}
	msgs := make([]pipeline.Message, len(entries))
	for i, e := range entries {
		fields := pipeline.EncodeDLQFields(e.fields)
		msgs[i] = pipeline.Message{Stream: h.keys.DLQ(), Fields: []string{
			pipeline.DLQStream, stream, pipeline.DLQID, e.id, pipeline.DLQGroup, h.cfg.Group,
			pipeline.DLQConsumer, h.cfg.Consumer, pipeline.DLQDeliveries, strconv.FormatInt(e.deliveries, 10),
			pipeline.DLQError, e.err.Error(), pipeline.DLQFields, fields,
		}}
	}
	if _, err := pipeline.Emit(ctx, h.rdb, msgs...); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	for _, e := range entries {
		h.log.Warn().Str("stream", stream).Str("id", e.id).Str("reason", e.err.Error()).Msg("dead-lettered")
	}
	return nil
}
