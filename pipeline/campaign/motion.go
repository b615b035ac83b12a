package campaign

import (
	"context"
	"fmt"
	"strings"
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
// campaign first, it waits while the stages are alive and the other
// campaign moves; with deliver killed, hung, cut off from Redis, or every
// send failing over, nothing moves. Calling the first stalled sent
// operators looking for a dead process that was not dead.

// motion answers, for the campaigns of one report or one list page that
// made no progress for DownAfter, whether the pipeline moves other work
// meanwhile. It reads, once, when first asked: the stages' liveness
// (pipeline.Working), and the last progress of the campaigns splitting or
// running. A list of twenty idle campaigns costs one read, not twenty.
type motion struct {
	rdb  rueidis.Client
	db   *pgxpool.Pool
	keys pipeline.Keys

	working map[string]bool  // by the stages asked about, joined
	moved   map[string]int64 // campaign → unix ms of its last progress; nil until read
	err     error            // why moved could not be read
}

func newMotion(rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys) *motion {
	return &motion{rdb: rdb, db: db, keys: keys, working: map[string]bool{}}
}

// moves reports whether the pipeline moves without campaign id, whose work
// waits on stages (Live.Waits): every one of those stages works
// (pipeline.Working: a running process, none stuck) and another campaign
// made progress (a target done or a device sent) within DownAfter of now.
// Alive stages are not enough: a provider failing every send leaves deliver
// alive and busy failing over, and the campaign is stalled. Another
// campaign progressing is not enough either: its entries may be past a
// stage that stopped, where this one's wait.
//
// A read that fails says no: the campaign reads stalled, as it did before
// this was asked, and trouble with Redis or PostgreSQL is then the likelier
// reason it does not move.
func (m *motion) moves(ctx context.Context, id string, stages []string, now time.Time) bool {
	if len(stages) == 0 {
		return false
	}
	key := strings.Join(stages, ",")
	working, asked := m.working[key]
	if !asked {
		var err error
		working, err = pipeline.Working(ctx, m.rdb, m.keys, stages...)
		working = working && err == nil
		m.working[key] = working
	}
	if !working {
		return false
	}
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
