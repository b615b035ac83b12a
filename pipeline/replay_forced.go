package pipeline

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// A forced replay bypasses dedupe's and deliver's marks, so every copy it
// writes goes to the provider again. Its resendOnce keeps one replay to one
// resend of each user, but two replays of the same window, two operators at
// once, a command retried after a timeout, or the run again that a replay
// leaving unfinished entries asks for, each wrote their own copies: every
// user of the window was sent twice. So each entry is force-replayed once:
// the script that writes a copy first marks its entry in Keys.Replayed, and
// skips an entry marked already; the copy is marked too, as a replay into
// the same stream would otherwise find it in its window and force it again.
// An unforced replay marks nothing: its copies send nothing already sent,
// and it must stay free to re-drive the same window again. A second resend
// meant as one (the first went to a provider still failing) says so:
// ReplayOptions.Again forces the marked entries too, and marks its copies.
//
// The marks go forcedKeep after the partition's last forced replay: longer
// than the stages' default --retention (24 h), past which the entries they
// stand for are trimmed. A deployment keeping entries longer can force the
// same window again once they have gone, meaning it.
const forcedKeep = 48 * time.Hour

// forcedOnceScript XADDs to stream KEYS[2] each copy whose source entry is
// not marked in hash KEYS[1] (every copy, with again), marking both the
// source and the copy. ARGV: the hash's expiry (unix ms), the copies'
// stream name (for their marks), again ("1" or "0"), then per copy: its
// source's mark, its field count, its fields. It returns per copy the new
// entry's id, or "" when the source was forced before.
var forcedOnceScript = rueidis.NewLuaScript(`
local out, i, again = {}, 4, ARGV[3] == '1'
while i <= #ARGV do
  local mark, n = ARGV[i], tonumber(ARGV[i + 1])
  if redis.call('HSETNX', KEYS[1], mark, 1) == 1 or again then
    local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, i + 2, i + 1 + n))
    redis.call('HSET', KEYS[1], ARGV[2] .. '/' .. id, 1)
    out[#out + 1] = id
  else
    out[#out + 1] = ''
  end
  i = i + 2 + n
end
if redis.call('PEXPIRETIME', KEYS[1]) < tonumber(ARGV[1]) then redis.call('PEXPIREAT', KEYS[1], ARGV[1]) end
return out
`)

// forcedMark is entry id of logical stream's mark in Keys.Replayed.
func forcedMark(stream, id string) string { return stream + "/" + id }

// forcedBefore reports which of marks (forcedMark) a forced replay wrote
// copies of already, in one read.
func forcedBefore(ctx context.Context, c rueidis.Client, key string, marks []string) ([]bool, error) {
	out := make([]bool, len(marks))
	if len(marks) == 0 {
		return out, nil
	}
	vals, err := c.Do(ctx, c.B().Hmget().Key(key).Field(marks...).Build()).ToArray()
	if err != nil {
		return nil, fmt.Errorf("replay: forced before in %s: %w", key, err)
	}
	for i, v := range vals {
		out[i] = i < len(out) && !v.IsNil()
	}
	return out, nil
}

// emitForced writes msgs (all to one stream, into) in one script call,
// each unless its source, marks[i], was forced before (unless again), and
// returns the new ids, "" for those skipped.
func emitForced(ctx context.Context, c rueidis.Client, key, into string, again bool, marks []string, msgs []Message) ([]string, error) {
	args := []string{strconv.FormatInt(time.Now().Add(forcedKeep).UnixMilli(), 10), into, "0"}
	if again {
		args[2] = "1"
	}
	for i, m := range msgs {
		args = append(args, marks[i], strconv.Itoa(len(m.Fields)))
		args = append(args, m.Fields...)
	}
	ids, err := forcedOnceScript.Exec(ctx, c, []string{key, msgs[0].Stream}, args).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("xadd %s: %w", msgs[0].Stream, err)
	}
	return ids, nil
}
