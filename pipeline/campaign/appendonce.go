package campaign

import (
	"context"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// statQueued, in a message's counters of a partition (keys.Stats), says the
// partition's share of the message is in its stream. queueMessage runs the
// appends again when they did not all succeed, or when PostgreSQL failed to
// mark the row queued after them (a master down for some partitions, a
// failover), and a share appended twice is read twice: a raw token's entry
// skips dedupe, so deliver would send it twice, and dedupe counts a users'
// entry in again, so the message would read done before every partition
// was read.
const statQueued = "queued"

// appendOnce appends message id's entries, msgs[i] being partition
// parts[i]'s share, in one pipelined call, skipping the shares an earlier
// attempt appended (pipeline.EmitOnce, marked statQueued in the partition's
// counters of the message, same tag as its stream).
func appendOnce(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, id string, expireMs int64, parts []int, msgs []pipeline.Message) error {
	marks := make([]pipeline.Once, len(msgs))
	for i := range msgs {
		marks[i] = pipeline.Once{Key: keys.Stats(parts[i], id), Field: statQueued, ExpireMs: expireMs}
	}
	return pipeline.EmitOnce(ctx, rdb, marks, msgs...)
}
