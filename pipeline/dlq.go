package pipeline

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/rueidis"
)

// ErrNoDeadLetter is returned by DLQ.Show for an id that is not in the DLQ.
var ErrNoDeadLetter = errors.New("no such dead letter")

// DeadLetter is one entry of the dead-letter stream, decoded.
type DeadLetter struct {
	ID         string            `json:"id"`        // the dead letter's own id in the dlq stream
	At         time.Time         `json:"at"`        // when it was dead-lettered
	Stream     string            `json:"stream"`    // the partition key it came from
	Name       string            `json:"name"`      // that stream's logical name
	Partition  int               `json:"partition"` // and its partition
	OrigID     string            `json:"orig_id"`   // its id there
	Group      string            `json:"group"`
	Consumer   string            `json:"consumer"`
	Deliveries int64             `json:"deliveries"`
	Error      string            `json:"error"`
	Fields     map[string]string `json:"fields"`              // the original entry's fields
	Malformed  string            `json:"malformed,omitempty"` // why it cannot be retried, if so
}

// Campaign is the campaign the original entry belonged to, if any.
//
// A results entry of a direct message names it in FieldMessage: listed
// under "-" and not found by --campaign, its dead letters could only be
// told apart by reading their fields.
func (d DeadLetter) Campaign() string { return cmp.Or(d.Fields[FieldCampaign], d.Fields[FieldMessage]) }

// DLQFilter selects dead letters. IDs, when given, select exactly those;
// otherwise every dead letter matching Stream and Campaign, oldest first.
type DLQFilter struct {
	IDs      []string
	Stream   string // logical name of the original stream ("" = any)
	Campaign string // the original entry's campaign ("" = any)
	// Group is the consumer group that dead-lettered it ("" = any): of
	// results, each webhook receiver's letters are its group's.
	Group string
	Limit int // at most this many (0 = all)
}

// DLQ inspects, retries and drops dead letters. The DLQ is one stream
// (Keys.DLQ) written by the runner; its entries carry the original stream
// key, id, fields, group, consumer, delivery count and error.
type DLQ struct {
	c    rueidis.Client
	keys Keys
}

// NewDLQ returns the DLQ of a deployment.
func NewDLQ(c rueidis.Client, keys Keys) *DLQ { return &DLQ{c: c, keys: keys} }

// Len is the number of dead letters.
func (q *DLQ) Len(ctx context.Context) (int64, error) {
	n, err := q.c.Do(ctx, q.c.B().Xlen().Key(q.keys.DLQ()).Build()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("dlq: xlen: %w", err)
	}
	return n, nil
}

// List returns the dead letters matching f, oldest first.
func (q *DLQ) List(ctx context.Context, f DLQFilter) ([]DeadLetter, error) {
	var out []DeadLetter
	err := q.scan(ctx, f, func(d DeadLetter) bool {
		out = append(out, d)
		return f.Limit <= 0 || len(out) < f.Limit
	})
	return out, err
}

// notAnID is why a dead letter id that is no stream id names none.
const notAnID = "not an id such as 1700000000000-0 (the ID column of dlq list)"

// CheckDeadLetterID says what is wrong with id as a dead letter's id, nil
// when it can be one: the CLI refuses a typo before it dials Redis.
func CheckDeadLetterID(id string) error {
	if _, err := parseID(id); err != nil {
		return fmt.Errorf("%q: %s", id, notAnID)
	}
	return nil
}

// Show returns one dead letter.
func (q *DLQ) Show(ctx context.Context, id string) (DeadLetter, error) {
	if err := CheckDeadLetterID(id); err != nil {
		// No dead letter has it: said as for a missing one (the console's
		// 404, retry's "left in place" while the other ids go), not as a
		// failure to read ("bad stream id", and the console's 503).
		return DeadLetter{}, fmt.Errorf("dlq %w: %w", err, ErrNoDeadLetter)
	}
	xs, err := q.c.Do(ctx, q.c.B().Xrange().Key(q.keys.DLQ()).Start(id).End(id).Build()).AsXRange()
	if err != nil {
		return DeadLetter{}, fmt.Errorf("dlq: xrange %s: %w", id, err)
	}
	if len(xs) == 0 {
		return DeadLetter{}, fmt.Errorf("dlq %s: %w", id, ErrNoDeadLetter)
	}
	return q.decode(xs[0]), nil
}

// DLQResult is what Retry or Drop did.
type DLQResult struct {
	Done   []string          // dead-letter ids retried or dropped
	NewIDs []string          // Retry: the re-injected entries' ids, in Done order
	Failed map[string]string // dead-letter id → why it was left in place
	// Errs is, of Failed, the letters a server's error left in place (Redis
	// did not take the re-injection), with that error: to try again, not
	// to act on. The console names the server and logs the error rather
	// than show Redis's words; Failed keeps them for the CLI.
	Errs map[string]error
	// Busy, of Retry, are the letters another retry running at the same
	// time had claimed or re-injected already: left to it.
	Busy []string
}

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
	res := DLQResult{Failed: map[string]string{}, Errs: map[string]error{}}
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
		for i, r := range q.c.DoMulti(ctx, cmds...) {
			release = append(release, q.keys.DLQClaim(sent[i].ID))
			id, err := r.ToString()
			if err != nil {
				res.Failed[sent[i].ID] = "re-inject into " + sent[i].Stream + ": " + err.Error()
				res.Errs[sent[i].ID] = fmt.Errorf("dlq: re-inject %s into %s: %w", sent[i].ID, sent[i].Stream, err)
				continue
			}
			added, newIDs = append(added, sent[i].ID), append(newIDs, id)
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

// Drop deletes the selected dead letters for good.
func (q *DLQ) Drop(ctx context.Context, f DLQFilter) (DLQResult, error) {
	res := DLQResult{Failed: map[string]string{}}
	letters, err := q.selectLetters(ctx, f, &res)
	if err != nil {
		return res, err
	}
	for chunk := range slices.Chunk(letters, 1000) {
		ids := make([]string, len(chunk))
		for i, d := range chunk {
			ids[i] = d.ID
		}
		if err := q.c.Do(ctx, q.c.B().Xdel().Key(q.keys.DLQ()).Id(ids...).Build()).Error(); err != nil {
			return res, fmt.Errorf("dlq: xdel: %w", err)
		}
		res.Done = append(res.Done, ids...)
	}
	return res, nil
}

// selectLetters resolves a filter for Retry/Drop; ids that are not in the DLQ
// are reported in res.Failed.
func (q *DLQ) selectLetters(ctx context.Context, f DLQFilter, res *DLQResult) ([]DeadLetter, error) {
	if len(f.IDs) == 0 {
		return q.List(ctx, f)
	}
	var out []DeadLetter
	for _, id := range f.IDs {
		d, err := q.Show(ctx, id)
		if errors.Is(err, ErrNoDeadLetter) {
			// "nosuch left in place: not in the dlq" did not say that
			// nosuch is no id at all, which Show does.
			res.Failed[id] = "not in the dlq"
			if _, perr := parseID(id); perr != nil {
				res.Failed[id] = notAnID
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// scan walks the DLQ oldest first, calling fn for each match until it returns false.
func (q *DLQ) scan(ctx context.Context, f DLQFilter, fn func(DeadLetter) bool) error {
	if len(f.IDs) > 0 {
		for _, id := range f.IDs {
			d, err := q.Show(ctx, id)
			if err != nil {
				return err
			}
			if !fn(d) {
				return nil
			}
		}
		return nil
	}
	const page = 500
	cursor := "-"
	for {
		xs, err := q.c.Do(ctx, q.c.B().Xrange().Key(q.keys.DLQ()).Start(cursor).End("+").Count(page).Build()).AsXRange()
		if err != nil {
			return fmt.Errorf("dlq: xrange: %w", err)
		}
		for _, x := range xs {
			d := q.decode(x)
			if f.Stream != "" && d.Name != f.Stream {
				continue
			}
			if f.Campaign != "" && d.Campaign() != f.Campaign {
				continue
			}
			if f.Group != "" && d.Group != f.Group {
				continue
			}
			if !fn(d) {
				return nil
			}
		}
		if len(xs) < page {
			return nil
		}
		cursor = "(" + xs[len(xs)-1].ID
	}
}

// decode turns a DLQ entry into a DeadLetter. A dead letter whose origin is
// not a partition stream of this deployment is marked Malformed: anyone who
// can write to Redis can write to the DLQ, and Retry must never XADD to an
// arbitrary key.
func (q *DLQ) decode(x rueidis.XRangeEntry) DeadLetter {
	fv := x.FieldValues
	d := DeadLetter{
		ID: x.ID, Stream: fv[DLQStream], OrigID: fv[DLQID], Group: fv[DLQGroup],
		Consumer: fv[DLQConsumer], Error: fv[DLQError], Partition: -1,
	}
	if id, err := parseID(x.ID); err == nil {
		d.At = time.UnixMilli(int64(id.ms)).UTC()
	}
	d.Deliveries, _ = strconv.ParseInt(fv[DLQDeliveries], 10, 64)
	var err error
	if d.Fields, err = DecodeDLQFields(fv[DLQFields]); err != nil {
		d.Malformed = err.Error()
	}
	name, p, perr := q.keys.ParseStream(d.Stream)
	switch {
	case perr != nil:
		d.Malformed = "origin: " + perr.Error()
	case StageOf(name) == "" || p < 0 || p >= q.keys.Partitions:
		d.Malformed = fmt.Sprintf("origin %q is not a stage input of this deployment", d.Stream)
	default:
		d.Name, d.Partition = name, p
	}
	return d
}

// EncodeDLQFields is how a dead letter keeps its entry's original fields (the
// DLQFields value): a JSON object of strings, except that a value which is not
// valid UTF-8 — the binary id batches u and m — becomes {"base64": "..."}.
// Plain json.Marshal would replace its bytes with U+FFFD, and a retried entry
// would carry other users than it had.
func EncodeDLQFields(fields map[string]string) string {
	out := make(map[string]any, len(fields))
	for f, v := range fields {
		if utf8.ValidString(v) {
			out[f] = v
		} else {
			out[f] = binaryValue{Base64: base64.StdEncoding.EncodeToString([]byte(v))}
		}
	}
	b, _ := json.Marshal(out) // strings and one struct: cannot fail
	return string(b)
}

type binaryValue struct {
	Base64 string `json:"base64"`
}

// DecodeDLQFields reverses EncodeDLQFields. Plain JSON objects of strings
// (dead letters written before binary values were encoded) decode as they are.
func DecodeDLQFields(s string) (map[string]string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("original fields are not a JSON object: %w", err)
	}
	// On a bad field, the others are still returned (for listing and
	// filtering), with the error.
	out := make(map[string]string, len(raw))
	var bad error
	for f, r := range raw {
		var v string
		if err := json.Unmarshal(r, &v); err == nil {
			if strings.ContainsRune(v, utf8.RuneError) && (f == FieldUsers || f == FieldMuted) {
				bad = fmt.Errorf("original field %s lost its binary bytes to a plain JSON encoding (not EncodeDLQFields); the entry cannot be retried", f)
			}
			out[f] = v
			continue
		}
		var b binaryValue
		if err := json.Unmarshal(r, &b); err != nil {
			bad = fmt.Errorf("original field %s is neither a string nor {\"base64\"}: %w", f, err)
			continue
		}
		bs, err := base64.StdEncoding.DecodeString(b.Base64)
		if err != nil {
			bad = fmt.Errorf("original field %s: %w", f, err)
			continue
		}
		out[f] = string(bs)
	}
	return out, bad
}

// Groups names the consumer groups whose dead letters the DLQ may hold:
// the stage table's (a stage's group is its name), and the others reading
// a stage's input now, sorted (webhook receivers' --group). The DLQ tools
// say them when a --group matches none: a misspelt group filtered
// everything out and read as an empty DLQ. A retired receiver no longer
// reads, so its letters, if any, are the only sign of it left.
func (q *DLQ) Groups(ctx context.Context) (stages, others []string, err error) {
	var streams []string
	for _, s := range Stages {
		stages = append(stages, s.Name)
		for _, in := range s.Inputs() {
			streams = append(streams, q.keys.Streams(in)...)
		}
	}
	groups, err := StreamGroups(ctx, q.c, streams)
	if err != nil {
		return nil, nil, fmt.Errorf("dlq: groups: %w", err)
	}
	for _, gs := range groups {
		for _, g := range gs {
			if !slices.Contains(stages, g.Name) && !slices.Contains(others, g.Name) {
				others = append(others, g.Name)
			}
		}
	}
	slices.Sort(others)
	return stages, others, nil
}
