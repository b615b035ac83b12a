package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/rueidis"
)

// TrimPoint computes the MINID below which a stream may be trimmed: entries
// older than the retention window AND acknowledged by every group, i.e. below
// every group's last-delivered id and its oldest pending id. ok is false when
// nothing may be trimmed (no group yet: its first consumer has not started).
func TrimPoint(ctx context.Context, c rueidis.Client, stream string, retention time.Duration, now time.Time) (minID string, ok bool, err error) {
	return trimPoint(ctx, c, stream, retention, now, false)
}

// trimPoint is TrimPoint; with unread, a stream no group reads yet may be
// trimmed by age alone.
func trimPoint(ctx context.Context, c rueidis.Client, stream string, retention time.Duration, now time.Time, unread bool) (minID string, ok bool, err error) {
	groups, err := StreamGroups(ctx, c, []string{stream})
	if err != nil {
		return "", false, err
	}
	limit := streamID{ms: uint64(now.Add(-retention).UnixMilli())}
	if len(groups[0]) == 0 {
		if unread && limit != (streamID{}) {
			return limit.String(), true, nil
		}
		return "", false, nil
	}
	cmds := make(rueidis.Commands, len(groups[0]))
	for i, g := range groups[0] {
		cmds[i] = c.B().Xpending().Key(stream).Group(g.Name).Build()
	}
	for i, res := range c.DoMulti(ctx, cmds...) {
		g := groups[0][i]
		last, err := parseID(g.LastDelivered)
		if err != nil {
			return "", false, err
		}
		if last.less(limit) {
			limit = last
		}
		summary, err := res.ToArray()
		if err != nil {
			return "", false, fmt.Errorf("xpending %s %s: %w", stream, g.Name, err)
		}
		if len(summary) >= 2 && !summary[1].IsNil() {
			s, _ := summary[1].ToString()
			oldest, err := parseID(s)
			if err != nil {
				return "", false, err
			}
			if oldest.less(limit) {
				limit = oldest
			}
		}
	}
	if limit == (streamID{}) {
		return "", false, nil
	}
	return limit.String(), true, nil
}

// Trim removes entries of stream that are past retention and acknowledged by
// every group (see TrimPoint). Groups only move forward and pending entries
// only get acked, so a point computed a moment ago stays safe.
func Trim(ctx context.Context, c rueidis.Client, stream string, retention time.Duration, now time.Time) (int64, error) {
	return trim(ctx, c, stream, retention, now, false)
}

// TrimOutput trims a stream a stage writes that may have no reader at all
// (results, when no webhook runs): while no group reads it, entries past
// retention go by age alone, so it stays bounded; once a group reads it, as
// Trim. A reader that starts later finds the last retention window.
func TrimOutput(ctx context.Context, c rueidis.Client, stream string, retention time.Duration, now time.Time) (int64, error) {
	return trim(ctx, c, stream, retention, now, true)
}

func trim(ctx context.Context, c rueidis.Client, stream string, retention time.Duration, now time.Time, unread bool) (int64, error) {
	minID, ok, err := trimPoint(ctx, c, stream, retention, now, unread)
	if err != nil || !ok {
		return 0, err
	}
	n, err := c.Do(ctx, c.B().Xtrim().Key(stream).Minid().Threshold(minID).Build()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("xtrim %s minid %s: %w", stream, minID, err)
	}
	return n, nil
}
