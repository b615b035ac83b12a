package deliver

import (
	"context"
	"fmt"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// fetched is what a batch read with the rows of its campaigns not cached
// yet (parseAll): their entries' tokens, from PostgreSQL, and from Redis,
// at the same time, what skipDone would have read after them.
type fetched struct {
	tokens map[*campaign][]device // by campaign, sorted by user
	// early holds, by campaign id, the Redis state read beside the rows.
	early map[string]earlyState
}

// earlyState is a campaign's state in Redis read beside its row: the
// message's sent marks of the batch's partition (the whole hash: a
// message's marks of a partition are a field per chunk of its devices, a
// few) and why the campaign failed ("" if it did not).
type earlyState struct {
	marks  map[string]string
	failed string
}

// tokensOf is the campaign's tokens if they came with its row.
func (f *fetched) tokensOf(c *campaign) ([]device, bool) {
	if f == nil {
		return nil, false
	}
	ds, ok := f.tokens[c]
	return ds, ok
}

// earlyOf is the campaign's Redis state if it was read beside its row.
func (f *fetched) earlyOf(id string) (earlyState, bool) {
	if f == nil {
		return earlyState{}, false
	}
	s, ok := f.early[id]
	return s, ok
}

// readEarly reads, in one pipelined call, the Redis state skipDone needs of
// campaigns whose rows are being read: each one's message marks in
// partition p and its failed reason. Every direct message is such a
// campaign (a campaign of its own, new to this process), and only once
// its row said so could its marks be read: a Redis round trip after the
// PostgreSQL one, before the message's first send. Read at the same time,
// the two waits overlap. The row decides only whether the marks are a
// message's hash, so it is read for every new campaign: for a campaign it
// is an empty key, once per campaign and process.
//
// Reading the marks a PostgreSQL round trip earlier is as safe as after:
// the batch is this consumer's while it is handled (awayFrom), so nobody
// else marks its devices meanwhile, and every send still comes after the
// read of its mark.
func (h *Handler) readEarly(ctx context.Context, p int, ids []string) (map[string]earlyState, error) {
	cmds := make(rueidis.Commands, 0, 2*len(ids))
	for _, id := range ids {
		cmds = append(cmds,
			h.rdb.B().Hgetall().Key(h.keys.SentMarks(p, id)).Build(),
			h.rdb.B().Hget().Key(h.keys.Campaign(id)).Field(pipeline.CampaignFailed).Build())
	}
	res := h.rdb.DoMulti(ctx, cmds...)
	out := make(map[string]earlyState, len(ids))
	for i, id := range ids {
		marks, err := res[2*i].AsStrMap()
		if err != nil && !rueidis.IsRedisNil(err) {
			return nil, fmt.Errorf("read sent marks of %s: %w", id, err)
		}
		reason, err := res[2*i+1].ToString()
		if err != nil && !rueidis.IsRedisNil(err) {
			return nil, fmt.Errorf("read campaign %s state: %w", id, err)
		}
		out[id] = earlyState{marks: marks, failed: reason}
	}
	return out, nil
}
