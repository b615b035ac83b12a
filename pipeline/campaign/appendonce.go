package campaign

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// statQueued, in a message's counters of a partition (keys.Stats), says the
// partition's share of the message is in its stream. queueOnce runs the
// appends again when they did not all succeed, or when PostgreSQL failed to
// mark the row queued after them (a master down for some partitions, a
// failover), and a share appended twice is read twice: a raw token's entry
// skips dedupe, so deliver would send it twice, and dedupe counts a users'
// entry in again, so the message would read done before every partition
// was read.
const statQueued = "queued"

// appendOnceScript appends one entry to a stream (KEYS[2]) unless the
// partition's counters (KEYS[1], same tag) say it was. ARGV: the counters'
// expiry (unix ms), then the entry's field-value pairs. 1 if appended.
// Sent whole (EVAL, no SHA): with a SHA, ExecMulti first loads the script
// on every node, a round trip more on a message's way to its first send,
// for a script of a few hundred bytes.
var appendOnceScript = rueidis.NewLuaScriptNoSha(`
if redis.call('HSETNX', KEYS[1], '` + statQueued + `', '1') == 0 then return 0 end
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
return 1
`)

// appendOnce appends message id's entries, msgs[i] being partition
// parts[i]'s share, in one pipelined call, skipping the shares an earlier
// attempt appended. A partition that fails keeps no mark, so the next
// attempt appends its share.
func appendOnce(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, id string, expireMs int64, parts []int, msgs []pipeline.Message) error {
	exp := strconv.FormatInt(expireMs, 10)
	execs := make([]rueidis.LuaExec, len(msgs))
	for i, m := range msgs {
		execs[i] = rueidis.LuaExec{Keys: []string{keys.Stats(parts[i], id), m.Stream}, Args: append([]string{exp}, m.Fields...)}
	}
	for i, res := range appendOnceScript.ExecMulti(ctx, rdb, execs...) {
		if err := res.Error(); err != nil {
			return fmt.Errorf("xadd %s: %w", msgs[i].Stream, err)
		}
	}
	return nil
}
