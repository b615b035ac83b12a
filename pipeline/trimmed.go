package pipeline

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Trimmed says whether streams no longer keep entries at or after from: an
// operator who asks results tail or a replay for the last three days, of a
// stream kept for one, got the last day with nothing saying two were gone.
// A stream lost entries when Redis counts more added than it holds (the
// trimmer removes the oldest, and nothing deletes others); those before its
// first entry kept are gone. When that first entry is after from, the
// window may have lost entries (those between from and it, if any existed):
// through is the latest such first entry over every stream (the time
// before which some partition lost what it had), ok false when no stream
// can have lost any of the window. An open from asks for nothing past
// (now), and so is never trimmed.
//
// Not max-deleted-entry-id: Redis 7.0 moves it on XDEL alone, not XTRIM.
func Trimmed(ctx context.Context, c rueidis.Client, streams []string, from Bound) (through time.Time, ok bool, err error) {
	if from.IsZero() {
		return time.Time{}, false, nil
	}
	start := from.start()
	var newest streamID
	cmds := make(rueidis.Commands, len(streams))
	for i, s := range streams {
		cmds[i] = c.B().XinfoStream().Key(s).Build()
	}
	for i, res := range c.DoMulti(ctx, cmds...) {
		m, err := res.AsMap()
		if err != nil {
			if isNoSuchKey(err) {
				continue // never written: nothing trimmed
			}
			return time.Time{}, false, fmt.Errorf("xinfo stream %s: %w", streams[i], err)
		}
		lengthV, addedV := m["length"], m["entries-added"]
		length, err := lengthV.AsInt64()
		if err != nil {
			return time.Time{}, false, fmt.Errorf("xinfo stream %s: length: %w", streams[i], err)
		}
		added, err := addedV.AsInt64()
		if err != nil {
			return time.Time{}, false, fmt.Errorf("xinfo stream %s: entries-added: %w", streams[i], err)
		}
		if added <= length {
			continue // nothing removed
		}
		// Kept from its first entry on; an emptied stream kept nothing up
		// to its last id.
		field := "recorded-first-entry-id"
		if length == 0 {
			field = "last-generated-id"
		}
		idV := m[field]
		s, err := idV.ToString()
		if err != nil {
			return time.Time{}, false, fmt.Errorf("xinfo stream %s: %s: %w", streams[i], field, err)
		}
		first, err := parseID(s)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("xinfo stream %s: %w", streams[i], err)
		}
		if start.less(first) && newest.less(first) {
			newest, ok = first, true
		}
	}
	return time.UnixMilli(int64(newest.ms)).UTC(), ok, nil
}

// isNoSuchKey is XINFO STREAM's answer for a stream not written yet.
func isNoSuchKey(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	return ok && strings.HasSuffix(re.Error(), "no such key")
}
