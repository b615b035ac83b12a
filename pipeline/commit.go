package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"
)

// ErrLostOwnership means another consumer claimed some of the entries of a
// batch with emits or counters while it was being handled; the runner then
// commits nothing, so the claimer's work is the only one that counts. (A batch
// without either is simply acked: see commit.)
var ErrLostOwnership = errors.New("entries were claimed by another consumer")

// commitScript emits and acks in one step, after checking that every input
// entry is still pending for this consumer (a slow consumer whose entries were
// claimed must not emit them a second time).
//
// KEYS[1] input stream, KEYS[2..] output streams (same hash tag).
// ARGV: group, consumer, n, id1..idn, nincr, (key index, field, delta)*nincr,
// ndelay, (key index, due ms, member)*ndelay, then per emit: key index,
// npairs, f, v...
var commitScript = rueidis.NewLuaScript(`
local group, consumer, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
if n > 0 then
  -- ids are in stream order: one XPENDING over their span, filtered to this
  -- consumer, usually proves ownership of all of them at once.
  local want, found = {}, 0
  for i = 4, 3 + n do want[ARGV[i]] = true end
  for _, e in ipairs(redis.call('XPENDING', KEYS[1], group, ARGV[4], ARGV[3 + n], 2 * n + 64, consumer)) do
    if want[e[1]] then found = found + 1 end
  end
  if found < n then
    for i = 4, 3 + n do
      local p = redis.call('XPENDING', KEYS[1], group, ARGV[i], ARGV[i], 1)
      if #p == 0 or p[1][2] ~= consumer then return -1 end
    end
  end
end
local i = 4 + n
local nincr = tonumber(ARGV[i])
i = i + 1
for _ = 1, nincr do
  redis.call('HINCRBY', KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2])
  i = i + 3
end
local ndelay = tonumber(ARGV[i])
i = i + 1
for _ = 1, ndelay do
  redis.call('ZADD', KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2])
  i = i + 3
end
while i <= #ARGV do
  local key, np = KEYS[tonumber(ARGV[i])], tonumber(ARGV[i + 1])
  local args = {key, '*'}
  for j = 1, np * 2 do args[#args + 1] = ARGV[i + 1 + j] end
  redis.call('XADD', unpack(args))
  i = i + 2 + np * 2
end
local acked = 0
for s = 4, 3 + n, 1000 do
  acked = acked + redis.call('XACK', KEYS[1], group, unpack(ARGV, s, math.min(s + 999, 3 + n)))
end
return acked
`)

// hashTag returns the {tag} part of a key, or the whole key when it has none.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// commit makes a handled batch durable: dead letters first, then emits and acks
// (atomically when every key shares the input's tag).
func (r *Runner) commit(ctx context.Context, b *Batch) (acked int64, err error) {
	// Counted before anything is acked, so that a keep that finds entries
	// acked by this commit already finds them counted too.
	b.root().acking.Add(int64(len(b.Entries)))
	if len(b.dead) > 0 || len(b.parts) > 0 {
		// The DLQ is another slot than the batch's stream: dead letters
		// cannot go in the ownership-checked script. Checked here instead,
		// one round trip on this rare path: a batch another consumer claimed
		// meanwhile is that consumer's to dead-letter, and writing ours too
		// would leave two dead letters of one entry (and ack its entries
		// under the new owner). So is an entry acked meanwhile, unless an
		// earlier try of ours acked it: only a commit acks, so it was handled
		// through by whoever claimed it.
		ids := b.allIDs()
		kept, taken, err := r.keep(ctx, b.Stream, ids)
		if err != nil {
			return 0, err
		}
		if taken > 0 || kept < len(ids) && !b.selfAcked {
			return 0, ErrLostOwnership
		}
	}
	if len(b.dead) > 0 {
		if err := r.deadLetter(ctx, b.Stream, b.deadEntries(), r.opts.Consumer); err != nil {
			return 0, err
		}
		b.selfAcked = true
	}
	if len(b.parts) > 0 {
		// Written before the entry is acked: a crash in between repeats a
		// dead letter, never loses one.
		if _, err := Emit(ctx, r.rdb, r.dlqMessages(b.Stream, b.parts, r.opts.Consumer)...); err != nil {
			return 0, fmt.Errorf("dead-letter: %w", err)
		}
		r.logDead(b.Stream, b.parts)
	}
	ids := b.IDs()
	if b.script != nil {
		return r.commitScript(ctx, b, ids)
	}
	if len(b.emits) == 0 && len(b.incrs) == 0 && len(b.delays) == 0 {
		// Nothing to emit: the batch's effects are already durable outside
		// Redis (ingest's upsert), so a plain XACK is the whole commit. The
		// ownership check of the script only keeps a claimed batch from being
		// emitted twice; without emits, acking entries another consumer
		// claimed meanwhile is right (their effects are done, and the
		// claimer's redo is idempotent), and it saves Redis an XPENDING over
		// the batch's span.
		return r.ack(ctx, b.Stream, ids)
	}
	tag := hashTag(b.Stream)
	atomic := true
	for _, m := range b.emits {
		if hashTag(m.Stream) != tag {
			atomic = false
		}
	}
	for _, in := range b.incrs {
		if hashTag(in.key) != tag {
			atomic = false
		}
	}
	for _, d := range b.delays {
		if hashTag(d.key) != tag {
			atomic = false
		}
	}
	if atomic {
		return r.commitAtomic(ctx, b.Stream, ids, b)
	}
	return r.commitOrdered(ctx, b.Stream, ids, b)
}

func (r *Runner) commitAtomic(ctx context.Context, stream string, ids []string, b *Batch) (int64, error) {
	incrs, emits := b.incrs, b.emits
	keys := []string{stream}
	keyIdx := map[string]string{}
	index := func(key string) string {
		idx, ok := keyIdx[key]
		if !ok {
			keys = append(keys, key)
			idx = strconv.Itoa(len(keys))
			keyIdx[key] = idx
		}
		return idx
	}
	args := make([]string, 0, 5+len(ids)+len(incrs)*3+len(b.delays)*3+len(emits)*4)
	args = append(args, r.opts.Group, r.opts.Consumer, strconv.Itoa(len(ids)))
	args = append(args, ids...)
	args = append(args, strconv.Itoa(len(incrs)))
	for _, in := range incrs {
		args = append(args, index(in.key), in.field, strconv.FormatInt(in.delta, 10))
	}
	args = append(args, strconv.Itoa(len(b.delays)))
	for _, d := range b.delays {
		args = append(args, index(d.key), strconv.FormatInt(d.at, 10), d.member)
	}
	for _, m := range emits {
		args = append(args, index(m.Stream), strconv.Itoa(len(m.Fields)/2))
		args = append(args, m.Fields...)
	}
	n, err := commitScript.Exec(ctx, r.rdb, keys, args).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("commit %s: %w", stream, err)
	}
	if n < 0 {
		return 0, ErrLostOwnership
	}
	return n, nil
}

// commitOrdered is for emits that cross hash tags (split → ranges of other
// partitions): emit everything in one pipelined call, then ack. A crash in
// between repeats the emits on redelivery; downstream stages are idempotent.
func (r *Runner) commitOrdered(ctx context.Context, stream string, ids []string, b *Batch) (int64, error) {
	incrs, emits := b.incrs, b.emits
	if len(emits)+len(incrs)+len(b.delays) > 0 {
		cmds := make(rueidis.Commands, 0, len(emits)+len(incrs)+len(b.delays))
		for _, m := range emits {
			cmds = append(cmds, xadd(r.rdb, m))
		}
		for _, in := range incrs {
			cmds = append(cmds, r.rdb.B().Hincrby().Key(in.key).Field(in.field).Increment(in.delta).Build())
		}
		for _, d := range b.delays {
			cmds = append(cmds, r.rdb.B().Zadd().Key(d.key).ScoreMember().ScoreMember(float64(d.at), d.member).Build())
		}
		for _, res := range r.rdb.DoMulti(ctx, cmds...) {
			if err := res.Error(); err != nil {
				return 0, fmt.Errorf("emit from %s: %w", stream, err)
			}
		}
	}
	return r.ack(ctx, stream, ids)
}

// ack XACKs ids of stream.
func (r *Runner) ack(ctx context.Context, stream string, ids []string) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := r.rdb.Do(ctx, r.rdb.B().Xack().Key(stream).Group(r.opts.Group).Id(ids...).Build()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("ack %s: %w", stream, err)
	}
	return n, nil
}

// xadd builds one XADD of a message. Never with MAXLEN: trimming is the
// trimmer's job, and it only removes what every group acknowledged.
func xadd(c rueidis.Client, m Message) rueidis.Completed {
	cmd := c.B().Xadd().Key(m.Stream).Id("*").FieldValue()
	for i := 0; i+1 < len(m.Fields); i += 2 {
		cmd = cmd.FieldValue(m.Fields[i], m.Fields[i+1])
	}
	return cmd.Build()
}

// Emit XADDs messages outside any handler (the API, replay), in one pipelined
// call. It returns the new entry ids in order.
func Emit(ctx context.Context, c rueidis.Client, msgs ...Message) ([]string, error) {
	cmds := make(rueidis.Commands, len(msgs))
	for i, m := range msgs {
		cmds[i] = xadd(c, m)
	}
	ids := make([]string, len(msgs))
	for i, res := range c.DoMulti(ctx, cmds...) {
		id, err := res.ToString()
		if err != nil {
			return ids[:i], fmt.Errorf("xadd %s: %w", msgs[i].Stream, err)
		}
		ids[i] = id
	}
	return ids, nil
}

type deadEntry struct {
	Entry
	Reason       string
	Deliveries   int64
	FromConsumer string
	BadInput     bool // the reason was marked BadInput: it fails again if retried
}

// deadEntries are the entries marked DeadLetter, in stream order (the
// DLQ lists oldest first).
func (b *Batch) deadEntries() []deadEntry {
	out := make([]deadEntry, 0, len(b.dead))
	for _, i := range slices.Sorted(maps.Keys(b.dead)) {
		out = append(out, deadEntry{Entry: b.Entries[i], Reason: b.dead[i].Error(), Deliveries: 1, BadInput: isBadInput(b.dead[i])})
	}
	return out
}

// DeadLetterFields are the fields of a DLQ entry.
const (
	DLQStream     = "stream"
	DLQID         = "id"
	DLQGroup      = "group"
	DLQConsumer   = "consumer"
	DLQDeliveries = "deliveries"
	DLQError      = "error"
	DLQFields     = "fields" // the original fields as a JSON object
)

// deadLetterTimeout bounds each of the write and the ack of dead letters,
// which go out even when the runner's context has ended.
const deadLetterTimeout = 5 * time.Second

// deadLetter writes entries to the DLQ with their origin, then acks them.
//
// Neither step ends with ctx (a runner stopping): the ack must follow the
// write, or the entries stay pending and the next claim dead-letters them a
// second time. The write too: a ctx that ends while the XADD is in flight
// makes rueidis give up its reply, not the XADD, which Redis ran, so the
// letter was written and the ack never sent. (A runner's claim loop, stopped
// just as it dead-lettered a poison entry, left it so:
// TestDeadLetterOutlastsAStop.) (Not one script: the DLQ is one stream, in
// another cluster slot than the partition's.)
func (r *Runner) deadLetter(ctx context.Context, stream string, entries []deadEntry, consumer string) error {
	if len(entries) == 0 {
		return nil
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deadLetterTimeout)
	defer cancel()
	if _, err := Emit(wctx, r.rdb, r.dlqMessages(stream, entries, consumer)...); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deadLetterTimeout)
	defer cancel()
	if err := r.rdb.Do(actx, r.rdb.B().Xack().Key(stream).Group(r.opts.Group).Id(ids...).Build()).Error(); err != nil {
		return fmt.Errorf("ack dead letters on %s: %w", stream, err)
	}
	r.logDead(stream, entries)
	return nil
}

// dlqMessages are the DLQ entries of entries of stream, with their origin.
func (r *Runner) dlqMessages(stream string, entries []deadEntry, consumer string) []Message {
	if consumer == "" {
		consumer = r.opts.Consumer
	}
	msgs := make([]Message, len(entries))
	for i, e := range entries {
		fields := []string{
			DLQStream, stream, DLQID, e.ID, DLQGroup, r.opts.Group, DLQConsumer, consumer,
			DLQDeliveries, strconv.FormatInt(e.Deliveries, 10), DLQError, e.Reason, DLQFields, EncodeDLQFields(e.Fields),
		}
		if e.BadInput {
			fields = append(fields, DLQBadInput, "1")
		}
		msgs[i] = Message{Stream: r.keys.DLQ(), Fields: fields}
	}
	return msgs
}

// logDead says what was dead-lettered in one line per call (a batch, or a
// claim of a partition), not one per entry: a webhook receiver answering
// 500 dead-lettered 3,560 entries in a minute, and the log was those 3,560
// lines. The line names the first entry and up to three reasons with their
// counts; `pushpipe dlq list` has every one.
func (r *Runner) logDead(stream string, entries []deadEntry) {
	if len(entries) == 0 {
		return
	}
	_, p, _ := r.keys.ParseStream(stream)
	r.metrics.deadLettered(series(r.opts.Stage, r.opts.Group, p), len(entries))
	const maxReasons = 3
	var reasons []string
	count := map[string]int{}
	for _, e := range entries {
		if count[e.Reason] == 0 && len(reasons) < maxReasons {
			reasons = append(reasons, e.Reason)
		}
		count[e.Reason]++
	}
	ev := r.log.Warn().Str("stream", stream).Int("entries", len(entries)).Str("id", entries[0].ID).
		Int64("deliveries", entries[0].Deliveries)
	if len(count) == 1 {
		ev = ev.Str("reason", entries[0].Reason)
	} else {
		d := zerolog.Dict()
		for _, reason := range reasons {
			d = d.Int(reason, count[reason])
		}
		ev = ev.Dict("reasons", d).Int("other_reasons", len(count)-len(reasons))
	}
	msg := "entry dead-lettered (pushpipe dlq show ID has it)"
	if len(entries) > 1 {
		msg = strconv.Itoa(len(entries)) + " entries dead-lettered (pushpipe dlq list shows them)"
	}
	ev.Msg(msg)
}
