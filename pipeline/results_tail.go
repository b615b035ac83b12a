package pipeline

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/redis/rueidis"
)

// TailResults calls fn with every result event appended to the results
// stream from from on (inclusive; an open bound means now, by Redis's
// clock: after each partition's last entry), over every partition, until
// ctx ends or fn returns an error. It reads each partition
// with its own XREAD (partitions may live on different cluster nodes),
// pipelined, and polls every 200ms when nothing came. A malformed entry is
// passed over and told to malformed (when not nil): a reader for operators
// has no DLQ to send it to (the webhook stage does). Events of different
// partitions come in no particular order.
func TailResults(ctx context.Context, c rueidis.Client, keys Keys, from Bound, fn func(ResultEvent) error, malformed func(entry string, err error)) error {
	streams := keys.Streams(StreamResults)
	last := make([]string, len(streams))
	if from.IsZero() {
		// Not time.Now(): entry ids are the clock of the Redis (node) that
		// holds the partition, which may be seconds from ours either way,
		// showing old events or hiding new ones.
		cmds := make(rueidis.Commands, len(streams))
		for i, s := range streams {
			cmds[i] = c.B().Xrevrange().Key(s).End("+").Start("-").Count(1).Build()
		}
		for i, res := range c.DoMulti(ctx, cmds...) {
			es, err := res.AsXRange()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("xrevrange %s: %w", streams[i], err)
			}
			last[i] = "0-0" // an empty partition's next entry is new
			if len(es) > 0 {
				last[i] = es[0].ID
			}
		}
	} else {
		for i := range last {
			last[i] = from.start().before()
		}
	}
	for {
		cmds := make(rueidis.Commands, len(streams))
		for i, s := range streams {
			cmds[i] = c.B().Xread().Count(1000).Streams().Key(s).Id(last[i]).Build()
		}
		got := 0
		for i, res := range c.DoMulti(ctx, cmds...) {
			m, err := res.AsXRead()
			if rueidis.IsRedisNil(err) {
				continue
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("xread %s: %w", streams[i], err)
			}
			for _, e := range m[streams[i]] {
				last[i] = e.ID
				got++
				evs, err := ParseResults(e.FieldValues)
				if err != nil {
					if malformed != nil {
						malformed(streams[i]+" "+e.ID, err)
					}
					continue
				}
				for _, ev := range evs {
					if err := fn(ev); err != nil {
						return err
					}
				}
			}
		}
		if got == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// before is the id just before a: XREAD's exclusive start that reads a on.
// Nothing precedes 0-0, and no entry can have it, so it stays.
func (a streamID) before() string {
	switch {
	case a.seq > 0:
		a.seq--
	case a.ms > 0:
		a.ms, a.seq = a.ms-1, math.MaxUint64
	}
	return a.String()
}
