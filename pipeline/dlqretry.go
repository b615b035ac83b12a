package pipeline

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Retry re-XADDs each selected dead letter's original fields to its original
// partition key (the same partition, so it stays next to its marks), and
// deletes the dead letter only once that XADD succeeded: a crash in between
// leaves the letter in place and a second retry repeats the entry, which the
// stages suppress like any redelivery. The re-injected entry starts with a
// fresh delivery count, and names the group that dead-lettered it
// (FieldGroup): of the groups that read the stream (one per webhook
// receiver on results), only that one handles it again. Each letter is
// claimed first (claimLetters), so two retries at once, which list the
// same letters, re-inject each once; a retry killed mid-way leaves its
// letters to the next one at once.
func (q *DLQ) Retry(ctx context.Context, f DLQFilter) (DLQResult, error) {
	res := DLQResult{Failed: map[string]string{}, Errs: map[string]error{}, Reasons: map[string]string{}}
	letters, err := q.selectLetters(ctx, f, &res)
	if err != nil {
		return res, err
	}
	gone, err := q.retiredGroups(ctx, letters)
	if err != nil {
		return res, err
	}
	h, done := q.holdConnection(ctx)
	defer done()
	for chunk := range slices.Chunk(letters, 500) {
		var todo []DeadLetter
		for _, d := range chunk {
			if d.Malformed != "" {
				res.Failed[d.ID] = d.Malformed
				continue
			}
			if gone[[2]string{d.Stream, d.Group}] {
				// Re-injected, every group left would ack it unsent: it
				// names the group to handle it (replayFields).
				res.Failed[d.ID] = "group " + d.Group + " no longer reads " + d.Stream + " (retired): nobody would handle it; drop its letters: pushpipe dlq drop --all --group " + d.Group
				continue
			}
			todo = append(todo, d)
		}
		sent, err := q.claimLetters(ctx, h, todo, &res)
		if err != nil {
			return res, err
		}
		cmds := make(rueidis.Commands, len(sent))
		for i, d := range sent {
			cmds[i] = xadd(q.c, Message{Stream: d.Stream, Fields: replayFields(d.Fields, d.Fields[FieldForce] == "1", d.Group)})
		}
		var added, newIDs, release []string
		var addedAt []int // of sent, the added ones
		for i, r := range q.c.DoMulti(ctx, cmds...) {
			release = append(release, q.keys.DLQClaim(sent[i].ID))
			id, err := r.ToString()
			if err != nil {
				res.Failed[sent[i].ID] = "re-inject into " + sent[i].Stream + ": " + err.Error()
				res.Errs[sent[i].ID] = fmt.Errorf("dlq: re-inject %s into %s: %w", sent[i].ID, sent[i].Stream, err)
				continue
			}
			added, newIDs, addedAt = append(added, sent[i].ID), append(newIDs, id), append(addedAt, i)
		}
		if len(added) == 0 {
			q.release(ctx, release)
			continue
		}
		// The claims go after the letters: a retry that listed a letter
		// and claims it then finds it gone.
		err = q.c.Do(ctx, q.c.B().Xdel().Key(q.keys.DLQ()).Id(added...).Build()).Error()
		q.release(ctx, release)
		if err != nil {
			// Re-injected but still listed: a later retry would repeat them,
			// which is harmless; say so rather than hide it.
			return res, fmt.Errorf("dlq: re-injected %d entries but could not delete their dead letters: %w", len(added), err)
		}
		res.Done = append(res.Done, added...)
		res.NewIDs = append(res.NewIDs, newIDs...)
		for _, i := range addedAt {
			res.Reasons[sent[i].ID] = sent[i].Error
			if sent[i].BadInput {
				res.BadInput = append(res.BadInput, sent[i].ID)
			}
		}
	}
	return res, nil
}

// dlqClaimFor is how long a claim outlives a retry that stopped between
// claiming and deleting its letters while still connected to Redis (its
// process stopped, not killed; an old retry's claim, which names no
// holder): a retry within that time leaves the letters to it
// (DLQResult.Busy), one after takes them. A retry whose connection closed
// (killed) loses its claims to the next retry at once (dlqholder.go).
const dlqClaimFor = time.Minute

// claimLettersScript claims, of the letters ARGV[4..] of the DLQ KEYS[1],
// those still in it whose claim (KEYS[i-2]) nobody holds or a holder of
// ARGV[3] (space-separated: holders no longer connected) holds, for ARGV[1]
// ms, in the name of ARGV[2]: per letter "claimed", "gone" (another retry
// re-injected it, or a drop took it), or "held <holder>" by another retry.
// One script, so a letter is never claimed after it was deleted.
var claimLettersScript = rueidis.NewLuaScript(`
local dead = {}
for h in string.gmatch(ARGV[3], '%S+') do dead[h] = true end
local out = {}
for i = 4, #ARGV do
  local k = KEYS[i - 2]
  if #redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i]) == 0 then
    out[i - 3] = 'gone'
  elseif redis.call('SET', k, ARGV[2], 'NX', 'PX', ARGV[1]) then
    out[i - 3] = 'claimed'
  else
    local h = redis.call('GET', k)
    if dead[h] then
      redis.call('SET', k, ARGV[2], 'PX', ARGV[1])
      out[i - 3] = 'claimed'
    else
      out[i - 3] = 'held ' .. h
    end
  end
end
return out
`)

// claimLetters returns the letters this retry (h) may re-inject: two
// retries at once (two operators, a command run again while the first
// runs) list the same letters, and each would re-inject every one of them.
// Letters whose holder is no longer connected (a retry killed mid-way) are
// taken from it. Those another retry holds or took are added to res.Busy.
func (q *DLQ) claimLetters(ctx context.Context, h retryHolder, letters []DeadLetter, res *DLQResult) ([]DeadLetter, error) {
	if len(letters) == 0 {
		return nil, nil
	}
	got, err := q.claim(ctx, h, letters, nil)
	if err != nil {
		return nil, err
	}
	var holders []string
	var held []DeadLetter
	for i, d := range letters {
		if holder, ok := strings.CutPrefix(got[i], "held "); ok {
			held = append(held, d)
			if !slices.Contains(holders, holder) {
				holders = append(holders, holder)
			}
		}
	}
	if dead := h.gone(ctx, holders); len(dead) > 0 {
		again, err := q.claim(ctx, h, held, dead)
		if err != nil {
			return nil, err
		}
		for i, j := 0, 0; i < len(letters) && j < len(held); i++ {
			if letters[i].ID == held[j].ID {
				got[i] = again[j]
				j++
			}
		}
	}
	var mine []DeadLetter
	for i, d := range letters {
		if got[i] == "claimed" {
			mine = append(mine, d)
		} else {
			res.Busy = append(res.Busy, d.ID)
		}
	}
	return mine, nil
}

// claim runs claimLettersScript over letters for h, taking those of the
// holders dead: per letter its answer.
func (q *DLQ) claim(ctx context.Context, h retryHolder, letters []DeadLetter, dead []string) ([]string, error) {
	keys := make([]string, 1, 1+len(letters))
	args := make([]string, 3, 3+len(letters))
	keys[0] = q.keys.DLQ()
	args[0], args[1], args[2] = strconv.FormatInt(dlqClaimFor.Milliseconds(), 10), h.claimValue(), strings.Join(dead, " ")
	for _, d := range letters {
		keys, args = append(keys, q.keys.DLQClaim(d.ID)), append(args, d.ID)
	}
	vals, err := claimLettersScript.Exec(ctx, q.c, keys, args).ToArray()
	if err != nil {
		return nil, fmt.Errorf("dlq: claim the letters to retry: %w", err)
	}
	got := make([]string, len(vals))
	for i, v := range vals {
		got[i], _ = v.ToString()
	}
	if len(got) != len(letters) {
		return nil, fmt.Errorf("dlq: claim the letters to retry: %d answers for %d letters", len(got), len(letters))
	}
	return got, nil
}

// release drops claims once their letters are re-injected and deleted, or
// failed to re-inject (left for the next retry). Best effort: a claim left
// expires after dlqClaimFor.
func (q *DLQ) release(ctx context.Context, claims []string) {
	if len(claims) > 0 {
		q.c.Do(ctx, q.c.B().Del().Key(claims...).Build())
	}
}

// retiredGroups are the (stream, group) pairs of letters whose group no
// longer reads its stream while others do (a webhook receiver retired,
// RetireGroup). A stream no group reads yet is not among them: the stage
// creating its group there reads it from the start.
func (q *DLQ) retiredGroups(ctx context.Context, letters []DeadLetter) (map[[2]string]bool, error) {
	var streams []string
	for _, d := range letters {
		if d.Group != "" && d.Malformed == "" && !slices.Contains(streams, d.Stream) {
			streams = append(streams, d.Stream)
		}
	}
	if len(streams) == 0 {
		return nil, nil
	}
	groups, err := StreamGroups(ctx, q.c, streams)
	if err != nil {
		return nil, fmt.Errorf("dlq: groups of the streams to retry into: %w", err)
	}
	gone := map[[2]string]bool{}
	for _, d := range letters {
		i := slices.Index(streams, d.Stream)
		if i < 0 || len(groups[i]) == 0 {
			continue
		}
		if !slices.ContainsFunc(groups[i], func(g GroupInfo) bool { return g.Name == d.Group }) {
			gone[[2]string{d.Stream, d.Group}] = true
		}
	}
	return gone, nil
}
