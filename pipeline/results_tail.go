package pipeline

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"
)

// TailResults calls fn with every result event appended to the results
// stream from from on (inclusive; an open bound means now, by Redis's
// clock: after each partition's last entry), over every partition, until
// ctx ends or fn returns an error; or, when follow is false, until it
// read every event the stream held when it started, and then it returns
// nil: a search of what results keeps ("did user 42 get it?") that ends
// by itself. It reads each partition
// with its own XREAD (partitions may live on different cluster nodes),
// pipelined, and polls every 200ms when nothing came. A malformed entry is
// passed over and told to malformed (when not nil): a reader for operators
// has no DLQ to send it to (the webhook stage does).
//
// History comes in the order of entry ids, whatever the partition: an
// operator reading `--from 1h` reads what happened in the order it
// happened (to the millisecond, and as far as the nodes' clocks agree), not partition by
// partition. Entries arriving once a partition is read to its end come as
// they are read.
//
// Redis unreachable once the tail runs (a restart, a cluster master down
// until its replica takes over), it says so on log, waits and reads on
// from where it was, and says when Redis answers again: no event lost or
// repeated. Before, a read of a master that was down waited for as long as
// the outage lasted, saying nothing, and an operator could not tell a
// quiet deployment from a dead one. Unreachable at the start, it fails.
func TailResults(ctx context.Context, c rueidis.Client, keys Keys, from Bound, follow bool, log zerolog.Logger, fn func(ResultEvent) error, malformed func(entry string, err error)) error {
	streams := keys.Streams(StreamResults)
	var now []string // each partition's last entry at the start
	if from.IsZero() || !follow {
		// Not time.Now(): entry ids are the clock of the Redis (node) that
		// holds the partition, which may be seconds from ours either way,
		// showing old events or hiding new ones.
		var err error
		if now, err = lastIDs(ctx, c, streams); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	last := make([]string, len(streams))
	for i := range last {
		if from.IsZero() {
			last[i] = now[i]
		} else {
			last[i] = from.start().before()
		}
	}
	t := tail{streams: streams, last: last, buf: make([][]tailEntry, len(streams)), more: make([]bool, len(streams))}
	if !follow {
		t.end, t.done = make([]streamID, len(streams)), make([]bool, len(streams))
		for i, id := range now {
			t.end[i], _ = parseID(id) // lastIDs parsed it
			t.done[i] = id == "0-0" || t.end[i].less(from.start())
		}
	}
	down := &outage{log: log, now: time.Now, counts: unreachable, words: spellWords{
		start: "Redis unreachable: the tail waits and retries (it says when Redis answers again)",
		still: "Redis still unreachable",
		end:   "Redis answers again; the tail goes on where it was",
	}}
	for {
		if err := t.fill(ctx, c); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !down.quiet(err) {
				return err
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		down.answered()
		n, err := t.emit(fn, malformed)
		if err != nil {
			return err
		}
		if t.through() {
			return nil
		}
		if n == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// tailRead is how many entries a partition's XREAD takes: up to
// tailRead × partitions entries wait in memory for their turn, and an
// entry holds a mark call's events (tens of KB).
const tailRead = 100

// lastIDs reads each stream's last entry id, "0-0" for an empty one (its
// next entry is new), in one pipelined call.
func lastIDs(ctx context.Context, c rueidis.Client, streams []string) ([]string, error) {
	cmds := make(rueidis.Commands, len(streams))
	for i, s := range streams {
		cmds[i] = c.B().Xrevrange().Key(s).End("+").Start("-").Count(1).Build()
	}
	ctx, cancel := context.WithTimeout(ctx, tailCall)
	defer cancel()
	ids := make([]string, len(streams))
	for i, res := range c.DoMulti(ctx, cmds...) {
		es, err := res.AsXRange()
		if err != nil {
			return nil, fmt.Errorf("xrevrange %s: %w", streams[i], err)
		}
		ids[i] = "0-0"
		if len(es) > 0 {
			if _, err := parseID(es[0].ID); err != nil {
				return nil, fmt.Errorf("xrevrange %s: %w", streams[i], err)
			}
			ids[i] = es[0].ID
		}
	}
	return ids, nil
}

// tail merges the partitions' entries by id.
type tail struct {
	streams []string
	last    []string      // the last id read of each partition
	buf     [][]tailEntry // entries read and not yet passed on
	more    []bool        // the last read was full: the partition may hold more

	// end, when not following, is each partition's last entry at the
	// start: done says a partition was read through it, and its entries
	// after it are not passed on.
	end  []streamID
	done []bool
}

// finished marks partition i read through its end, when not following.
func (t *tail) finished(i int) {
	if t.done != nil {
		t.done[i] = true
	}
}

// through is whether a tail that does not follow passed on every entry up
// to its end.
func (t *tail) through() bool {
	if t.end == nil {
		return false
	}
	for i := range t.streams {
		if !t.done[i] || len(t.buf[i]) > 0 {
			return false
		}
	}
	return true
}

type tailEntry struct {
	id streamID
	e  rueidis.XRangeEntry
}

// tailCall bounds each of the tail's reads: one that Redis does not
// answer in time (a master down: rueidis retries a read until it answers)
// is an outage to say, not a wait.
const tailCall = 5 * time.Second

// fill reads every partition whose entries are all passed on. A partition
// read fails or not as a whole: its last id moves only with the entries
// kept, so a fill that fails is read again from where it was.
func (t *tail) fill(ctx context.Context, c rueidis.Client) error {
	var idx []int
	var cmds rueidis.Commands
	for i, s := range t.streams {
		if len(t.buf[i]) == 0 && (t.done == nil || !t.done[i]) {
			idx = append(idx, i)
			cmds = append(cmds, c.B().Xread().Count(tailRead).Streams().Key(s).Id(t.last[i]).Build())
		}
	}
	if len(cmds) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, tailCall)
	defer cancel()
	for j, res := range c.DoMulti(ctx, cmds...) {
		i := idx[j]
		m, err := res.AsXRead()
		if rueidis.IsRedisNil(err) {
			t.more[i] = false
			t.finished(i) // nothing after the last read: its end was read, or trimmed
			continue
		}
		if err != nil {
			return fmt.Errorf("xread %s: %w", t.streams[i], err)
		}
		es := m[t.streams[i]]
		t.more[i] = len(es) == tailRead
		for _, e := range es {
			id, err := parseID(e.ID)
			if err != nil {
				return fmt.Errorf("xread %s: %w", t.streams[i], err)
			}
			if t.end != nil && t.end[i].less(id) {
				t.more[i] = false // written after the start: not passed on
				break
			}
			t.buf[i] = append(t.buf[i], tailEntry{id, e})
			t.last[i] = e.ID
		}
		if !t.more[i] {
			t.finished(i) // every entry up to its end is read
		}
	}
	return nil
}

// emit passes on entries, the lowest id first, until a partition that may
// hold a lower one has to be read again; it returns how many it passed.
func (t *tail) emit(fn func(ResultEvent) error, malformed func(entry string, err error)) (int, error) {
	n := 0
	for {
		low := -1
		for i, b := range t.buf {
			if len(b) == 0 {
				if t.more[i] {
					return n, nil
				}
				continue
			}
			// Within a millisecond, the partitions in turn: sequence
			// numbers of different streams tell nothing of their order.
			if low < 0 || b[0].id.ms < t.buf[low][0].id.ms {
				low = i
			}
		}
		if low < 0 {
			return n, nil
		}
		e := t.buf[low][0].e
		t.buf[low] = t.buf[low][1:]
		n++
		evs, err := ParseResults(e.FieldValues)
		if err != nil {
			if malformed != nil {
				malformed(t.streams[low]+" "+e.ID, err)
			}
			continue
		}
		for _, ev := range evs {
			if err := fn(ev); err != nil {
				return n, err
			}
		}
	}
}

// before is the id just before a: XREAD's exclusive start that reads a on.
// Nothing precedes 0-0, and no entry can have it, so it stays.
func (a streamID) before() string {
	switch {
	case a.seq > 0:
		a.seq--
	case a.ms > 0:
		a.ms, a.seq = a.ms-1, math.MaxUint64
	}
	return a.String()
}
