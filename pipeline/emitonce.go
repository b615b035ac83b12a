package pipeline

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/rueidis"
)

// Once marks a message EmitOnce appended: Field set in the hash Key, which
// is in the slot of the message's stream (same hash tag), the hash expiring
// at ExpireMs (unix ms).
type Once struct {
	Key, Field string
	ExpireMs   int64
}

// emitOnceScript appends one entry to a stream (KEYS[2]) unless its mark
// (field ARGV[1] of the hash KEYS[1]) is set, and sets it. ARGV[2] the
// hash's expiry (unix ms), then the entry's field-value pairs. 1 if
// appended. Sent whole (EVAL, no SHA): with a SHA, ExecMulti first loads the
// script on every node, a round trip more on a direct message's way to its
// first send, for a script of a few hundred bytes.
var emitOnceScript = rueidis.NewLuaScriptNoSha(`
if redis.call('HSETNX', KEYS[1], ARGV[1], '1') == 0 then return 0 end
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
return 1
`)

// EmitOnce appends each message unless marks[i] says an earlier call did,
// in one pipelined call: for an append retried after it failed part way
// (some masters down), where a message appended twice would be read twice.
// The mark and the entry are written together, so a message that failed
// keeps no mark and the next call appends it.
func EmitOnce(ctx context.Context, c rueidis.Client, marks []Once, msgs ...Message) error {
	if len(marks) != len(msgs) {
		return fmt.Errorf("emit once: %d marks for %d messages", len(marks), len(msgs))
	}
	execs := make([]rueidis.LuaExec, len(msgs))
	for i, m := range msgs {
		args := make([]string, 0, 2+len(m.Fields))
		args = append(args, marks[i].Field, strconv.FormatInt(marks[i].ExpireMs, 10))
		execs[i] = rueidis.LuaExec{Keys: []string{marks[i].Key, m.Stream}, Args: append(args, m.Fields...)}
	}
	for i, res := range emitOnceScript.ExecMulti(ctx, c, execs...) {
		if err := res.Error(); err != nil {
			return fmt.Errorf("xadd %s: %w", msgs[i].Stream, err)
		}
	}
	return nil
}
