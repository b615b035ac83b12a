package campaign

import (
	"context"
	"fmt"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// Reasons sums, over the partitions, why a campaign's devices ended failed
// or invalid (Keys.Reasons: reason → devices), in one pipelined call. Empty
// for a campaign with no failures or one Redis no longer holds.
func Reasons(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, id string) (map[string]int64, error) {
	cmds := make(rueidis.Commands, 0, keys.Partitions)
	for p := range keys.Partitions {
		cmds = append(cmds, rdb.B().Hgetall().Key(keys.Reasons(p, id)).Build())
	}
	out := map[string]int64{}
	for _, res := range rdb.DoMulti(ctx, cmds...) {
		m, err := res.AsIntMap()
		if err != nil {
			return nil, fmt.Errorf("failure reasons of campaign %q: %w", id, err)
		}
		for reason, n := range m {
			out[reason] += n
		}
	}
	return out, nil
}
