package campaign

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The watchers (Cancels, Rates) follow what Redis holds of a campaign,
// which its writers (Cancel, SetRate) set after the record. A Redis that
// lost it (a restart without persistence, a failover, the AOF's last
// second) would leave them on the old answer until a reader of the
// campaign (status, a list, the console) wrote it again from the record,
// and nobody may be reading. So a watcher given a database reads the
// records of the campaigns it watches in the background, and writes back
// what Redis lost.

// recordPoll is how often a watcher with a database (Cancels.DB, Rates.DB)
// reads the records of the campaigns it watches, unless its RecordPoll
// says otherwise: what Redis lost is noticed within it, where it had gone
// unseen until someone read the campaign. One query for all of them.
const recordPoll = 5 * time.Second

// recordCheck times one watcher's reads of the records; its poller's own
// (one goroutine: no lock).
type recordCheck struct {
	every time.Duration // the watcher's RecordPoll; zero: recordPoll
	last  time.Time
}

// due reports whether the records are to be read now (a database is set,
// and the last read was every ago or never), and counts it as done.
func (rc *recordCheck) due(db *pgxpool.Pool) bool {
	every := rc.every
	if every <= 0 {
		every = recordPoll
	}
	if db == nil || time.Since(rc.last) < every {
		return false
	}
	rc.last = time.Now()
	return true
}

// recordsAmong is the records of those of campaigns ids in one of states,
// in one query.
func recordsAmong(ctx context.Context, db *pgxpool.Pool, ids []string, states ...string) (map[string]Campaign, error) {
	rows, err := db.Query(ctx, `SELECT `+rowColumns+` FROM campaigns WHERE id = ANY($1) AND state = ANY($2)`, ids, states)
	if err != nil {
		return nil, fmt.Errorf("read the records of %d campaigns: %w: %w", len(ids), ErrPostgres, err)
	}
	defer rows.Close()
	out := map[string]Campaign{}
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, fmt.Errorf("read the records of %d campaigns: %w: %w", len(ids), ErrPostgres, err)
		}
		out[r.c.ID] = r.c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the records of %d campaigns: %w: %w", len(ids), ErrPostgres, err)
	}
	return out, nil
}
