package pipeline

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Bound is one end of a replay window: a point in time or an exact entry id.
// The zero Bound is open (the stream's start, or its end).
type Bound struct {
	id     streamID
	isTime bool
	set    bool
}

// TimeBound is the bound at t, to the millisecond (stream ids are unix ms).
func TimeBound(t time.Time) Bound {
	return Bound{id: streamID{ms: uint64(max(t.UnixMilli(), 0))}, isTime: true, set: true}
}

// IDBound is the bound at an exact entry id ("1700000000000-3").
func IDBound(id string) (Bound, error) {
	s, err := parseID(id)
	if err != nil {
		return Bound{}, err
	}
	// "ms-" is an id cut short, which Redis refuses too: read as ms-0 it
	// left out the rest of the millisecond a --to meant.
	if strings.HasSuffix(id, "-") {
		return Bound{}, fmt.Errorf("bad stream id %q: give ms-seq (1700000000000-0) or ms alone for the whole millisecond", id)
	}
	if !strings.Contains(id, "-") {
		return Bound{id: s, isTime: true, set: true}, nil // "ms" alone: the whole millisecond
	}
	return Bound{id: s, set: true}, nil
}

// ParseBound reads what an operator types for --from / --to:
//
//	1700000000000-3         an entry id, exact
//	1700000000000           unix milliseconds, the whole millisecond
//	2026-05-01T12:00:00Z    RFC 3339 time, to the millisecond
//	15m, 2h30m, "15m ago"   that long before now
//
// The empty string is an open bound.
func ParseBound(s string, now time.Time) (Bound, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Bound{}, nil
	}
	if s[0] >= '0' && s[0] <= '9' {
		if _, err := strconv.ParseUint(strings.ReplaceAll(s, "-", ""), 10, 64); err == nil && strings.Count(s, "-") <= 1 {
			return IDBound(s)
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return TimeBound(t), nil
	}
	// "15m ago" is how people say it (and how the README once wrote it).
	// A "+" is not "ago": time.ParseDuration takes "+15m", which read
	// as 15m ago a --to that may have meant from now on.
	ago := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(s, "-"), "ago"))
	if d, err := time.ParseDuration(ago); err == nil && d >= 0 && !strings.HasPrefix(ago, "+") {
		return TimeBound(now.Add(-d)), nil
	}
	return Bound{}, fmt.Errorf("%q is neither an entry id (1700000000000-0), unix milliseconds, an RFC 3339 time nor a duration ago (15m)", s)
}

// IsZero reports whether the bound is open.
func (b Bound) IsZero() bool { return !b.set }

// start is the bound as an inclusive XRANGE start.
func (b Bound) start() streamID {
	if !b.set {
		return streamID{}
	}
	return b.id // a time starts at ms-0
}

// end is the bound as an inclusive XRANGE end: a time covers its whole
// millisecond.
func (b Bound) end() streamID {
	if !b.set {
		return streamID{ms: math.MaxUint64, seq: math.MaxUint64}
	}
	if b.isTime {
		return streamID{ms: b.id.ms, seq: math.MaxUint64}
	}
	return b.id
}

// IsStart reports whether the bound is the start of every stream, as
// --from 0 gives: whatever the stream keeps first, not a time.
func (b Bound) IsStart() bool { return b.set && b.id == streamID{} }

// String shows the bound as typed back: an id, or a time in UTC; the
// start as "the start" (--from 0 read "from 1970-01-01T00:00:00.000Z", a
// time no entry has, as if the epoch were asked for).
func (b Bound) String() string {
	switch {
	case !b.set:
		return "open"
	case b.IsStart():
		return "the start"
	case b.isTime:
		return time.UnixMilli(int64(b.id.ms)).UTC().Format("2006-01-02T15:04:05.000Z")
	default:
		return b.id.String()
	}
}
