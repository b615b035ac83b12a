package campaign

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// A campaign that made no progress for pipeline.DownAfter is either
// stalled or queued (Report.StalledSinceMs, QueuedSinceMs). Both look the
// same in its own counters: nothing done, nothing sent. What tells them
// apart is the rest of the pipeline. Queued behind a large campaign's
// entries in deliver's stream, or behind split and resolve cutting another
// campaign first, it waits while the stages are alive and move other work;
// with deliver killed, hung, cut off from Redis, or every send failing
// over, nothing moves. Calling the first stalled sent operators looking
// for a dead process that was not dead.
//
// Whether the pipeline moves other work is said two ways. By the other
// campaigns' counters: one made progress (a send or a target done) within
// DownAfter. And, for a campaign whose work is all ahead of deliver, by
// the motion of split, resolve and dedupe (pipeline.Motions): a process of
// each stage holding its work committed, emitted or progressed within
// DownAfter. Counters alone missed a large campaign cut or resolved for
// longer than that before it sent anything, every stage alive and busy,
// and called the campaigns behind it stalled. Deliver's own motion says
// nothing: it commits and progresses while every send fails over.

// motion answers, for the campaigns of one report or one list page that
// made no progress for DownAfter, whether the pipeline moves other work
// meanwhile. It reads, once, when first asked: the stages' liveness and
// motion (pipeline.Motions), and, when their motion does not answer, the
// last progress of the campaigns splitting or running. A list of twenty
// idle campaigns costs one read of each, not twenty.
type motion struct {
	rdb       rueidis.Client
	db        *pgxpool.Pool
	keys      pipeline.Keys
	downAfter time.Duration // Reader.DownAfter: how recent a move counts

	stages    map[string]pipeline.Motion // the campaign stages'; nil until read
	stagesErr error                      // why stages could not be read
	moved     map[string]int64           // campaign → unix ms of its last progress; nil until read
	err       error                      // why moved could not be read
}

func newMotion(rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys, downAfter time.Duration) *motion {
	return &motion{rdb: rdb, db: db, keys: keys, downAfter: downAfter}
}

// moves reports whether the pipeline moves without campaign id, whose work
// waits on stages waits (Live.Waits) and is held now by holds (Live.Holds):
// every one of waits works (a running process, none stuck), and either
// another campaign made progress within DownAfter of now (a send or a
// target done), or every one of holds is split, resolve or dedupe and one
// of its processes moved work within DownAfter (aheadMoves). Alive stages
// are not enough: a provider failing every send leaves deliver alive and
// busy failing over, and the campaign is stalled. Another campaign
// progressing is not enough either: its entries may be past a stage that
// stopped, where this one's wait.
//
// The first way is the only one there was before the stages' motion was
// recorded, and it still holds alone where that motion is not enough:
// deliver holding the campaign's work (its own motion goes on while every
// send fails over), a stage whose processes do not report it (older
// versions), or resolve with nothing to do while split cuts (resolve
// counts as holding while a campaign is cut: holdsOf). So a campaign reads
// queued whenever it did, and also behind split and resolve moving another
// campaign that has not sent yet.
//
// A read that fails says no: the campaign reads stalled, as it did before
// this was asked, and trouble with Redis or PostgreSQL is then the likelier
// reason it does not move.
func (m *motion) moves(ctx context.Context, id string, waits, holds []string, now time.Time) bool {
	if len(waits) == 0 {
		return false
	}
	if m.stages == nil && m.stagesErr == nil {
		m.stages, m.stagesErr = pipeline.Motions(ctx, m.rdb, m.keys, campaignStages...)
	}
	if m.stagesErr != nil {
		return false
	}
	for _, s := range waits {
		if !m.stages[s].Working {
			return false
		}
	}
	return m.aheadMoves(holds) || m.othersProgressed(ctx, id, now)
}

// aheadMoves reports whether holds are stages ahead of deliver, at least
// one, each of which moved work within DownAfter by its processes' word
// (pipeline.Motions).
func (m *motion) aheadMoves(holds []string) bool {
	for _, s := range holds {
		if s == "deliver" {
			return false
		}
		if moved, _ := m.stages[s].MovedWithin(m.downAfter); !moved {
			return false
		}
	}
	return len(holds) > 0
}

// othersProgressed reports whether a campaign other than id made progress
// (a target done or a device sent) within DownAfter of now.
func (m *motion) othersProgressed(ctx context.Context, id string, now time.Time) bool {
	if m.moved == nil && m.err == nil {
		m.moved, m.err = m.lastProgress(ctx)
	}
	for other, ms := range m.moved {
		if other != id && now.Sub(time.UnixMilli(ms)) < m.downAfter {
			return true
		}
	}
	return false
}

// lastProgress reads when each campaign splitting or running (the newest
// maxCounted, from the campaigns_active index, as the progress metrics do)
// last made progress: its latest send or target done, over the partitions,
// in one pipelined call.
func (m *motion) lastProgress(ctx context.Context) (map[string]int64, error) {
	rows, err := m.db.Query(ctx, `
		SELECT id FROM campaigns
		WHERE kind = 'campaign' AND state IN ('splitting', 'running')
		ORDER BY created_at DESC LIMIT $1`, maxCounted)
	if err != nil {
		return nil, fmt.Errorf("campaigns sending: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("campaigns sending: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("campaigns sending: %w", err)
	}
	out := make(map[string]int64, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	cmds := make(rueidis.Commands, 0, len(ids)*m.keys.Partitions)
	for _, id := range ids {
		for p := range m.keys.Partitions {
			cmds = append(cmds, m.rdb.B().Hmget().Key(m.keys.Stats(p, id)).Field(pipeline.StatLastMs, pipeline.StatDoneMs).Build())
		}
	}
	for i, res := range m.rdb.DoMulti(ctx, cmds...) {
		vals, err := res.ToArray()
		if err != nil {
			return nil, fmt.Errorf("last progress of campaigns: %w", err)
		}
		id := ids[i/m.keys.Partitions]
		out[id] = max(out[id], intAt(vals, 0), intAt(vals, 1))
	}
	return out, nil
}
