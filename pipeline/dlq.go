package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

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
	// BadInput is whether the stage dead-lettered it as bad input
	// (BadInput): retried, it fails again.
	BadInput bool `json:"bad_input,omitempty"`
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
	// Reasons, of Retry, is each retried letter's reason (its Error), by
	// dead-letter id.
	Reasons map[string]string
	// BadInput, of Retry, are the retried letters that had been
	// dead-lettered as bad input (DeadLetter.BadInput), in Done order: they
	// are back within seconds, and the CLI says so rather than a bare
	// "retried 1".
	BadInput []string
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
	d.BadInput = fv[DLQBadInput] == "1" || legacyBadInput(d.Error)
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
