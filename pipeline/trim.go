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
	groups, err := StreamGroups(ctx, c, []string{stream})
	if err != nil {
		return "", false, err
	}
	if len(groups[0]) == 0 {
		return "", false, nil
	}
	limit := streamID{ms: uint64(now.Add(-retention).UnixMilli())}
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
	minID, ok, err := TrimPoint(ctx, c, stream, retention, now)
	if err != nil || !ok {
		return 0, err
	}
	n, err := c.Do(ctx, c.B().Xtrim().Key(stream).Minid().Threshold(minID).Build()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("xtrim %s minid %s: %w", stream, minID, err)
	}
	return n, nil
}
