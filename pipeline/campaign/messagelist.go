package campaign

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// MessageSummary is a direct message as a list shows it: its report and
// what it said.
type MessageSummary struct {
	Report    MessageReport
	App       string
	Title     string
	Body      string
	Priority  string
	CreatedAt time.Time
}

// MessageItem is a direct message in a list as GET /v1/messages and
// `pushpipe messages list --json` write it: its status, as GET
// /v1/messages/{id} has it, and what lets a person tell it from the others
// (a campaign's id is most often a name; a message's is most often a key
// its backend made up).
type MessageItem struct {
	MessageReport
	App       string    `json:"app"`
	Title     string    `json:"title"`
	Priority  string    `json:"priority"`
	CreatedAt time.Time `json:"created_at"`
}

// MessagePage is a page of ListMessages as GET /v1/messages and `pushpipe
// messages list --json` write it.
type MessagePage struct {
	Messages []MessageItem `json:"messages"`
	Next     string        `json:"next,omitempty"` // the id to pass as before for the next page
}

// NewMessagePage is the page of ms, with next as ListMessages returned it.
func NewMessagePage(ms []MessageSummary, next string) MessagePage {
	p := MessagePage{Messages: make([]MessageItem, len(ms)), Next: next}
	for i, m := range ms {
		p.Messages[i] = MessageItem{MessageReport: m.Report, App: m.App, Title: m.Title, Priority: m.Priority, CreatedAt: m.CreatedAt}
	}
	return p
}

// ListMessages reports the direct messages newest first (by creation time,
// then id), created before the message before ("" for the newest), at most
// limit (0: DefaultListLimit; at most MaxListLimit), and the id to pass as
// before for the next page ("" after the last). The counters of all of them
// are read in one pipelined call, as MessageProgress reads one's: a message
// Redis no longer holds shows zeros. ErrNotFound when before names no
// message.
func ListMessages(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys, before string, limit int) ([]MessageSummary, string, error) {
	switch {
	case limit == 0:
		limit = DefaultListLimit
	case limit < 0 || limit > MaxListLimit:
		return nil, "", invalid("limit: must be a whole number from 1 to %d (default %d), got %d", MaxListLimit, DefaultListLimit, limit)
	}
	if before != "" {
		if err := ValidateID(before); err != nil {
			return nil, "", err
		}
	}
	rows, err := db.Query(ctx, `
		SELECT id, app, title, body, priority, created_at FROM campaigns
		WHERE kind = 'message'
		  AND ($1 = '' OR (created_at, id) < (SELECT created_at, id FROM campaigns WHERE id = $1 AND kind = 'message'))
		ORDER BY created_at DESC, id DESC LIMIT $2`, before, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list messages: %w: %w", ErrPostgres, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MessageSummary, error) {
		var m MessageSummary
		err := r.Scan(&m.Report.ID, &m.App, &m.Title, &m.Body, &m.Priority, &m.CreatedAt)
		return m, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("list messages: %w: %w", ErrPostgres, err)
	}
	if before != "" && len(out) == 0 {
		var kind string
		err := db.QueryRow(ctx, `SELECT kind FROM campaigns WHERE id = $1`, before).Scan(&kind)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && kind != KindMessage {
			return nil, "", fmt.Errorf("message %q: %w", before, ErrNotFound)
		}
		if err != nil {
			return nil, "", fmt.Errorf("list messages: %w: %w", ErrPostgres, err)
		}
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].Report.ID
	}
	ids := make([]string, len(out))
	for i, m := range out {
		ids[i] = m.Report.ID
	}
	reps, err := messageCounters(ctx, rdb, keys, ids)
	if err != nil {
		return nil, "", err
	}
	for i := range out {
		out[i].Report = reps[i]
	}
	return out, next, nil
}
