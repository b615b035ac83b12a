package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/rueidis"
)

// CommitScript is Lua a handler contributes to its batch's commit, for
// effects the runner's Emit and Incr cannot say (dedupe's marks, which decide
// what to emit): the runner runs the body inside its own commit, after it
// checked that every entry of the batch is still this consumer's and before
// it acks them, so the handler's writes and the ack are one atomic step and a
// batch another consumer claimed meanwhile writes nothing. The handler never
// knows the group or the consumer.
//
// The body sees the handler's keys and arguments as KEYS[1..] and ARGV[1..];
// the runner appends its own after them, so the body reads its own by count,
// never up to #KEYS or #ARGV. It calls emit(key, field, value, ...) to XADD
// downstream (never with MAXLEN: trimming is the trimmer's), must not
// return, and touches only keys of the input's hash tag.
type CommitScript struct{ lua *rueidis.Lua }

// NewCommitScript wraps a handler's Lua body.
func NewCommitScript(body string) *CommitScript {
	return &CommitScript{lua: rueidis.NewLuaScript(commitPrelude + "do\n" + body + "\nend\n" + commitEpilogue)}
}

// The runner's part, after the handler's KEYS and ARGV: KEYS[#KEYS] the
// input stream; ARGV ends with id1..idn, n, consumer, group.
const commitPrelude = `
local NA = #ARGV
local group, consumer, n = ARGV[NA], ARGV[NA - 1], tonumber(ARGV[NA - 2])
local input, first = KEYS[#KEYS], NA - 2 - n
if n > 0 then
  local want, found = {}, 0
  for i = first, NA - 3 do want[ARGV[i]] = true end
  for _, e in ipairs(redis.call('XPENDING', input, group, ARGV[first], ARGV[NA - 3], 2 * n + 64, consumer)) do
    if want[e[1]] then found = found + 1 end
  end
  if found < n then
    for i = first, NA - 3 do
      local p = redis.call('XPENDING', input, group, ARGV[i], ARGV[i], 1)
      if #p == 0 or p[1][2] ~= consumer then return -1 end
    end
  end
end
local function emit(key, ...) redis.call('XADD', key, '*', ...) end
`

const commitEpilogue = `
local acked = 0
for s = first, NA - 3, 1000 do
  acked = acked + redis.call('XACK', input, group, unpack(ARGV, s, math.min(s + 999, NA - 3)))
end
return acked
`

// Commit has the runner run s with keys and args as the batch's commit. The
// script then does all of the batch's writes: Emit, EmitAt and Incr must not
// be used with it. Entries marked Fail or DeadLetter are not acked by it.
func (b *Batch) Commit(s *CommitScript, keys, args []string) {
	b.script = &scriptCall{s: s, keys: keys, args: args}
}

type scriptCall struct {
	s          *CommitScript
	keys, args []string
}

var errScriptAndEmits = errors.New("a batch with a CommitScript emitted or counted besides it")

// commitScript runs the handler's script with the runner's part.
func (r *Runner) commitScript(ctx context.Context, b *Batch, ids []string) (int64, error) {
	if len(b.emits)+len(b.incrs)+len(b.delays) > 0 {
		return 0, errScriptAndEmits
	}
	sc := b.script
	keys := append(sc.keys[:len(sc.keys):len(sc.keys)], b.Stream)
	args := make([]string, 0, len(sc.args)+len(ids)+3)
	args = append(args, sc.args...)
	args = append(args, ids...)
	args = append(args, strconv.Itoa(len(ids)), r.opts.Consumer, r.opts.Group)
	n, err := sc.s.lua.Exec(ctx, r.rdb, keys, args).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("commit %s: %w", b.Stream, err)
	}
	if n < 0 {
		return 0, ErrLostOwnership
	}
	return n, nil
}
