package split

import (
	"context"
	"strconv"
	"strings"

	"github.com/redis/rueidis"
)

// A segment's checkpoint field ("<channel>#<i>") holds one of
//
//	"<next> <lo>"              the next range is number next, from lo
//	"<next> <lo> <hi> <hi>..." the same, and the ranges cut from there,
//	                           recorded before they are emitted
//	"done <ranges>"            the segment is cut
//
// Ranges are recorded before they are emitted, so a range id names the same
// [lo, hi] whatever fails after: a repeat (a crash, a failed write, a second
// splitter of the campaign) emits the recorded bounds again, never a new cut
// made after subscriptions changed. Every id emitted is then one of the
// segment's final ranges, and ranges_total counts every id resolve records.

func (s *segment) state() string {
	if s.done {
		return "done " + strconv.Itoa(s.next)
	}
	b := append(strconv.AppendInt(nil, int64(s.next), 10), ' ')
	b = strconv.AppendInt(b, s.lo, 10)
	for _, hi := range s.pending {
		b = strconv.AppendInt(append(b, ' '), hi, 10)
	}
	return string(b)
}

func (s *segment) restore(v string) bool {
	f := strings.Fields(v)
	if len(f) == 2 && f[0] == "done" {
		n, err := strconv.Atoi(f[1])
		s.next, s.done, s.pending = n, true, nil
		return err == nil
	}
	if len(f) < 2 {
		return false
	}
	n, err1 := strconv.Atoi(f[0])
	lo, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || lo < s.start || lo > s.end {
		return false
	}
	s.next, s.lo, s.done, s.pending = n, lo, false, nil
	prev := lo - 1
	for _, x := range f[2:] {
		hi, err := strconv.ParseInt(x, 10, 64)
		if err != nil || hi <= prev || hi > s.end {
			return false
		}
		s.pending, prev = append(s.pending, hi), hi
	}
	return true
}

// advanced is s once its pending ranges are emitted.
func (s segment) advanced() segment {
	last := s.pending[len(s.pending)-1]
	s.next += len(s.pending)
	s.pending = nil
	if last == s.end {
		s.done = true
	} else {
		s.lo = last + 1
	}
	return s
}

// casScript sets a checkpoint field to ARGV[3] if it holds ARGV[2] (""
// for absent) and returns what it holds then. KEYS[1] the checkpoint;
// ARGV[1] the field; ARGV[4] when the checkpoint expires (unix ms).
var casScript = rueidis.NewLuaScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if cur ~= ARGV[2] then return cur end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return ARGV[3]`)

// record moves segment s to next in the checkpoint, unless the checkpoint
// no longer holds what s was read from (another splitter of the campaign
// moved it): then s becomes what it holds, and record reports false.
func (h *Handler) record(ctx context.Context, key string, expMs int64, s *segment, next segment) (bool, error) {
	want := next.state()
	cur, err := casScript.Exec(ctx, h.cfg.Redis, []string{key},
		[]string{s.field(), s.raw, want, strconv.FormatInt(expMs, 10)}).ToString()
	if err != nil {
		return false, err
	}
	if cur == want {
		*s = next
		s.raw = want
		return true, nil
	}
	s.reset(cur)
	return false, nil
}

// reset sets s to checkpoint value v, or to the segment's start when v is
// absent or unreadable.
func (s *segment) reset(v string) {
	s.raw = v
	if !s.restore(v) {
		s.next, s.lo, s.done, s.pending = 0, s.start, false, nil
	}
}
