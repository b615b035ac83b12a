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
// Whether a stage moves other work is said two ways. Of deliver, by the
// other campaigns' counters: one made progress (a send or a target done)
// within DownAfter. Its own motion would not do: it commits and progresses
// while every send fails over (pipeline.Motions). Of split, resolve and
// dedupe, by their processes' motion (pipeline.Motions): one committed,
// emitted or progressed within DownAfter. Counters alone missed a large
// campaign cut or resolved for longer than that before it sent anything,
// every stage alive and busy, and called the campaigns behind it stalled.

// motion answers, for the campaigns of one report or one list page that
// made no progress for DownAfter, whether the pipeline moves other work
// meanwhile. It reads, once, when first asked: the stages' liveness and
// motion (pipeline.Motions), and, when a stage's motion is deliver's or
// unknown, the last progress of the campaigns splitting or running. A list
// of twenty idle campaigns costs one read of each, not twenty.
type motion struct {
	rdb  rueidis.Client
	db   *pgxpool.Pool
	keys pipeline.Keys

	stages    map[string]pipeline.Motion // the campaign stages'; nil until read
	stagesErr error                      // why stages could not be read
	moved     map[string]int64           // campaign → unix ms of its last progress; nil until read
	err       error                      // why moved could not be read
}

func newMotion(rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys) *motion {
	return &motion{rdb: rdb, db: db, keys: keys}
}

// moves reports whether the pipeline moves without campaign id, whose work
// waits on stages waits (Live.Waits) and is held now by holds (Live.Holds):
// every one of waits works (a running process, none stuck), and every one
// of holds moves other work within DownAfter of now (stageMoves). Alive
// stages are not enough: a provider failing every send leaves deliver
// alive and busy failing over, and the campaign is stalled. A stage moving
// is not enough either: the campaign's work may be held by another, one
// that stopped moving.
//
// With holds empty (the counters say nothing waits, while Progress took a
// done back: Live.confirmDone), it moves when another campaign progressed,
// as before holds were asked.
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
	if len(holds) == 0 {
		return m.othersProgressed(ctx, id, now)
	}
	for _, s := range holds {
		if !m.stageMoves(ctx, id, s, now) {
			return false
		}
	}
	return true
}

// stageMoves reports whether stage, holding campaign id's work, moves other
// work: deliver when another campaign progressed within DownAfter; the
// others when one of their processes moved within DownAfter, or, when none
// did and one of them does not say (an older version: pipeline.Motion's
// Unreported), when another campaign progressed, as before their motion was
// recorded.
func (m *motion) stageMoves(ctx context.Context, id, stage string, now time.Time) bool {
	if stage != "deliver" {
		moved, known := m.stages[stage].MovedWithin(pipeline.DownAfter)
		if moved || known {
			return moved
		}
	}
	return m.othersProgressed(ctx, id, now)
}

// othersProgressed reports whether a campaign other than id made progress
// (a target done or a device sent) within DownAfter of now.
func (m *motion) othersProgressed(ctx context.Context, id string, now time.Time) bool {
	if m.moved == nil && m.err == nil {
		m.moved, m.err = m.lastProgress(ctx)
	}
	for other, ms := range m.moved {
		if other != id && now.Sub(time.UnixMilli(ms)) < pipeline.DownAfter {
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
