package campaign

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Recent returns up to limit campaigns, newest first, created before the
// campaign with id before ("" = from the newest): the operator console's list.
// An unknown before gives an empty page.
func Recent(ctx context.Context, db *pgxpool.Pool, before string, limit int) ([]Campaign, error) {
	rows, err := db.Query(ctx, `
		SELECT id, app, channels, category, title, body, data, ttl_seconds, created_at
		FROM campaigns
		WHERE $1 = '' OR (created_at, id) < (SELECT created_at, id FROM campaigns WHERE id = $1)
		ORDER BY created_at DESC, id DESC
		LIMIT $2`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("list campaigns: %w", err)
	}
	defer rows.Close()
	var out []Campaign
	for rows.Next() {
		var (
			c    Campaign
			data []byte
			ttl  int64
		)
		if err := rows.Scan(&c.ID, &c.App, &c.Channels, &c.Category, &c.Title, &c.Body, &data, &ttl, &c.CreatedAt); err != nil {
			return nil, fmt.Errorf("list campaigns: %w", err)
		}
		if string(data) != "{}" {
			c.Data = json.RawMessage(data)
		}
		c.TTL = time.Duration(ttl) * time.Second
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list campaigns: %w", err)
	}
	return out, nil
}
