package campaign

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// List limits.
const (
	DefaultListLimit = 20
	MaxListLimit     = 100
)

// ListQuery selects campaigns: those in State ("" for all), newest first,
// created before the campaign Before (a page's Next), at most Limit.
type ListQuery struct {
	State  string
	Limit  int
	Before string
}

// Validate fills the default limit and checks the rest.
func (q *ListQuery) Validate() error {
	if q.State != "" && !slices.Contains(States, q.State) {
		// A list, not Go's "[scheduled splitting ...]".
		return invalid("state: must be one of %s, got %q", strings.Join(States, ", "), devices.Echo(q.State))
	}
	switch {
	case q.Limit == 0:
		q.Limit = DefaultListLimit
	case q.Limit < 0 || q.Limit > MaxListLimit:
		return invalid("limit: must be a whole number from 1 to %d (default %d), got %d", MaxListLimit, DefaultListLimit, q.Limit)
	}
	if q.Before != "" {
		if err := ValidateID(q.Before); err != nil {
			return invalid("before: %s", strings.TrimPrefix(err.Error(), "id: "))
		}
	}
	return nil
}

// List reports the campaigns q selects, newest first (by creation time,
// then id), and the id to pass as Before for the next page ("" after the
// last). States come from PostgreSQL, so the list survives the loss of
// Redis. A campaign whose state the counters have moved on (running in the
// table, done by the counters) is reported, and filtered, by its new state.
// ErrNotFound when Before names no campaign.
func List(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys, q ListQuery) ([]Report, string, error) {
	return Reader{}.List(ctx, rdb, db, keys, q)
}

// List is the package's List under rd's settings.
func (rd Reader) List(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys, q ListQuery) ([]Report, string, error) {
	if err := q.Validate(); err != nil {
		return nil, "", err
	}
	// A filter on a state that reading the counters (or a cancel flag
	// whose record failed: progressFrom) can reach also takes the
	// campaigns that may have reached it without the table knowing yet.
	states := []string{q.State}
	switch q.State {
	case "", StateScheduled:
	case StateCanceled:
		states = append(states, StateScheduled, StateSplitting, StateRunning)
	case StateDone, StateFailed:
		// A canceled one too: sends in flight at its cancel may have
		// brought every target to its end (progressFrom).
		states = append(states, StateSplitting, StateRunning, StateCanceled)
	default:
		states = append(states, StateSplitting, StateRunning)
	}
	// The table's state is the report's unless Redis can move it: then a
	// row found after a full page may still not be listed, and Next is
	// given only once one that is has been seen (a Next whose page is
	// empty is not "absent after the last page").
	exact := q.State == ""
	out := make([]Report, 0, q.Limit)
	before := q.Before
	more := false // a campaign the next page lists follows out's last
	m := newMotion(rdb, db, keys, rd.downAfter())
	for !more {
		rows, err := db.Query(ctx, `
			SELECT `+rowColumns+` FROM campaigns
			WHERE kind = 'campaign' -- direct messages have their own route
			  AND ($1 = '' OR state = ANY($2))
			  AND ($3 = '' OR (created_at, id) < (SELECT created_at, id FROM campaigns WHERE id = $3 AND kind = 'campaign'))
			ORDER BY created_at DESC, id DESC LIMIT $4`, q.State, states, before, q.Limit+1)
		if err != nil {
			return nil, "", fmt.Errorf("list campaigns: %w: %w", ErrPostgres, err)
		}
		var page []row
		for rows.Next() {
			r, err := scanRow(rows)
			if err != nil {
				rows.Close()
				return nil, "", fmt.Errorf("list campaigns: %w: %w", ErrPostgres, err)
			}
			page = append(page, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, "", fmt.Errorf("list campaigns: %w: %w", ErrPostgres, err)
		}
		if before != "" && len(page) == 0 && len(out) == 0 {
			// (A message's id is no cursor here: it paged by its time.)
			if _, err := loadCampaign(ctx, db, before); err != nil {
				return nil, "", err
			}
		}
		// The page's counters in one pipelined call (a scheduled
		// campaign has none yet, but a cancel flag), not one per
		// campaign.
		ids := make([]string, len(page))
		for i, r := range page {
			ids[i] = r.c.ID
		}
		lives, err := countersOf(ctx, rdb, keys, ids)
		if err != nil {
			return nil, "", err
		}
		for _, r := range page {
			if len(out) == q.Limit && exact { // r is listed by the next page
				more = true
				break
			}
			before = r.c.ID
			l := lives[0]
			lives = lives[1:]
			rep, err := r.progressFrom(ctx, rdb, db, keys, l, nil, m)
			if err != nil {
				return nil, "", err
			}
			if q.State != "" && rep.State != q.State {
				continue
			}
			if len(out) == q.Limit {
				more = true
				break
			}
			out = append(out, rep)
		}
		if len(page) <= q.Limit { // the table has no more
			break
		}
	}
	if !more {
		return out, "", nil
	}
	return out, out[len(out)-1].ID, nil
}
