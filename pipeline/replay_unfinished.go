package pipeline

import (
	"context"
	"fmt"

	"github.com/redis/rueidis"
)

// A replay's copy of an entry is idempotent only if it is handled after its
// original: dedupe's and deliver's marks are read before a round's sends and
// written as they end, so an original and its copy handled at once both
// find the marks unwritten and both send. An entry its stage's group has not
// finished, pending in the group (held by a live consumer, or by a dead one
// until it is claimed) or not read yet (the stage down or behind), is handled
// by the stage anyway, at an unknown time: a copy could only race it. So a
// replay leaves those to the stage and re-injects only what the group acked.

// replayGroup is the consumer group whose progress decides which entries of
// the replayed stream are finished, or "" to judge none (replay them all).
// It is the group of the stage that reads the replayed stream, which will
// handle what it has not finished whatever the replay writes, also when the
// copies go --into another stream. results has one group per webhook
// receiver: with --group, the copies are that receiver's alone, so its
// group decides; without, they go to every receiver, each at its own place
// in the stream, and an entry one has not finished another may have lost,
// so none decides (the webhook has no marks to race: every copy is POSTed
// again anyway, and receivers dedupe by event id).
func replayGroup(opts *ReplayOptions) string {
	if opts.Stream == StreamResults {
		return opts.Group
	}
	return StageOf(opts.Stream)
}

// leftToStage tells the entries of one partition's window that its group
// has not finished.
type leftToStage struct {
	stream, group string
	read          streamID // the group's last-delivered id: entries after it are unread
}

// newLeftToStage reads where group stands on stream. It is nil, judging
// nothing, when group is "" or stream has no such group. A stage creates its
// group when it first runs, so a stream without it has had no stage read
// it, and nothing says whether one will read these entries, or from where
// (the webhook's --from now starts its group at the stream's end, past
// them): the replay copies them, as the only sure way they are handled.
//
// It must be read before pending: an entry the group read after this is
// past read, left as unread; one read before is still pending, or finished.
func newLeftToStage(ctx context.Context, c rueidis.Client, stream, group string) (*leftToStage, error) {
	if group == "" {
		return nil, nil
	}
	groups, err := StreamGroups(ctx, c, []string{stream})
	if err != nil {
		return nil, fmt.Errorf("replay: groups of %s: %w", stream, err)
	}
	for _, g := range groups[0] {
		if g.Name != group {
			continue
		}
		read, err := parseID(g.LastDelivered)
		if err != nil {
			return nil, fmt.Errorf("replay: group %s of %s: %w", group, stream, err)
		}
		return &leftToStage{stream: stream, group: group, read: read}, nil
	}
	return nil, nil
}

// pending lists the group's pending entries from first to last, paged by
// page (XPENDING's count), as a set of ids.
func (l *leftToStage) pending(ctx context.Context, c rueidis.Client, first, last string, page int) (map[string]bool, error) {
	out := map[string]bool{}
	if l == nil {
		return out, nil
	}
	for start := first; ; {
		rows, err := c.Do(ctx, c.B().Xpending().Key(l.stream).Group(l.group).Start(start).End(last).Count(int64(page)).Build()).ToArray()
		if err != nil {
			return nil, fmt.Errorf("replay: pending entries of %s in group %s: %w", l.stream, l.group, err)
		}
		rs := pendingRows(rows)
		for _, r := range rs {
			out[r.id] = true
		}
		if len(rows) < page || len(rs) == 0 {
			return out, nil
		}
		start = "(" + rs[len(rs)-1].id // exclusive start (Redis ≥ 6.2)
	}
}

// unfinished reports whether the group has yet to finish the entry id: it
// is pending (in pending, read for its page) or not read.
func (l *leftToStage) unfinished(id string, pending map[string]bool) bool {
	if l == nil {
		return false
	}
	if pending[id] {
		return true
	}
	e, err := parseID(id)
	return err == nil && l.read.less(e)
}
