package pipeline

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// A stage can be alive, not stuck, and busy with another campaign's work
// while a campaign's entries wait behind it in its stream: split cutting a
// large campaign, resolve reading its ranges, for longer than DownAfter
// before that campaign sends anything. Nothing a campaign counts moves
// then (sends and targets done are deliver's), so a reader of its progress
// cannot tell that wait from a pipeline that stopped. Each process says,
// with its beat (aliveScript), when it last moved work: a batch committed
// with entries acked, or a batch in hand that emitted (Batch.EmitNow) or
// reported progress (Batch.Progress). Motions reads it for a campaign's
// progress (campaign.motion).
//
// Nothing per entry: one atomic store per commit or EmitNow, one field per
// process per beat.
//
// Motion is not evidence that sends go out: deliver commits while every
// send fails over (the retries are re-emitted, Batch.EmitAt, and the entry
// acked), and reports progress at each round. Whether deliver delivers is
// for the campaigns' own counters to say.

// markMoved records that this process moved work now: a batch committed
// with entries acked.
func (r *Runner) markMoved() { r.moved.Store(time.Now().UnixNano()) }

// movedAgo is aliveScript's ARGV[6]: ms since this process last moved work
// (markMoved, or a batch in hand that emitted or progressed), measured on
// its own clock as the held ms are; "never" before the first.
func (r *Runner) movedAgo(now time.Time) string {
	last := max(r.moved.Load(), r.held.lastMoved())
	if last == 0 {
		return "never"
	}
	return strconv.FormatInt(max(now.Sub(time.Unix(0, last)).Milliseconds(), 0), 10)
}

// lastMoved is the unix ns of the latest emit or progress of a batch in
// hand, 0 with none.
func (h *heldBatches) lastMoved() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var last int64
	for b := range h.m {
		last = max(last, b.moved.Load(), b.emitted.Load())
	}
	return last
}

// Motion is a stage (a consumer group) as a campaign waiting on it sees
// it.
type Motion struct {
	// Working is Working's answer for the group: a running process, none
	// stuck.
	Working bool
	// MovedAgo is how long ago, by Redis's clock, one of its running
	// processes last moved work; negative when none reported having moved.
	MovedAgo time.Duration
	// Unreported is set when a running process says nothing of its motion
	// (a process older than the moved hash, during a rolling upgrade): the
	// group may move without saying so.
	Unreported bool
}

// MovedWithin reports whether the group moved work within d, and whether
// that is known: a group that did not, with a running process that does
// not report its motion, may have moved.
func (m Motion) MovedWithin(d time.Duration) (moved, known bool) {
	if m.MovedAgo >= 0 && m.MovedAgo < d {
		return true, true
	}
	return false, !m.Unreported
}

// Motions reads the motion of groups, in one pipelined round with their
// liveness (readLiveness).
func Motions(ctx context.Context, c rueidis.Client, keys Keys, groups ...string) (map[string]Motion, error) {
	alive, moved, now, err := readLiveness(ctx, c, keys, groups, true)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Motion, len(groups))
	for _, g := range groups {
		t := GroupTotal{Name: g, Lag: -1} // Lag: not idle, whatever the work
		t.withLiveness(alive[g])
		m := Motion{Working: t.State != StateStopped && t.State != StateStuck, MovedAgo: -1}
		for _, p := range alive[g] {
			if !p.Running {
				continue
			}
			ms, ok := parseMoved(moved[g][p.Consumer], p)
			switch {
			case !ok:
				m.Unreported = true
			case ms > 0:
				ago := max(now.Sub(time.UnixMilli(ms)), 0)
				if m.MovedAgo < 0 || ago < m.MovedAgo {
					m.MovedAgo = ago
				}
			}
		}
		out[g] = m
	}
	return out, nil
}

// parseMoved decodes process p's field of the moved hash (aliveScript):
// the unix ms it last moved, 0 before the first; false when it is not one
// p's last beat wrote (none, or left by a newer process of the same name
// before an older one took it over).
func parseMoved(v string, p ProcessStatus) (int64, bool) {
	ms, beat, ok := strings.Cut(v, ",")
	moved, err1 := strconv.ParseInt(ms, 10, 64)
	at, err2 := strconv.ParseInt(beat, 10, 64)
	if !ok || err1 != nil || err2 != nil || at != p.LastSeen.UnixMilli() {
		return 0, false
	}
	return moved, true
}
