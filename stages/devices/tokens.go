package devices

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Device is one valid (active) token of a user.
type Device struct {
	UserID   int64
	Platform Platform
	Token    string
}

// Querier is what ValidTokens needs: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// validTokensSQL is answered by index-only scans of the partial covering
// index devices_app_user_active (app, user_id) INCLUDE (platform, token)
// WHERE state = 0, one probe per user (see the test that checks the plan).
// It is written as a semi-join on unnest rather than "user_id = ANY($2)": on
// PostgreSQL 15 the planner costs ANY over a 1000-element array as 1000 random
// index probes and picks a sequential scan of tables up to a few hundred
// thousand rows (measured: 17-35 ms instead of 3-5 ms at 200k rows); the
// semi-join keeps the nested loop of index probes at every table size, and
// repeated user ids in the input do not repeat devices.
const validTokensSQL = `SELECT user_id, platform, token FROM devices
WHERE app = $1 AND state = 0 AND user_id IN (SELECT unnest($2::bigint[]))`

// ValidTokens returns the active tokens of the given users of app, in no
// particular order. Users without a device are simply absent. Pass a
// batch (about 1000 users) per call: one round trip per batch, not per user.
func ValidTokens(ctx context.Context, db Querier, app string, users []int64) ([]Device, error) {
	if len(users) == 0 {
		return nil, nil
	}
	rows, err := db.Query(ctx, validTokensSQL, app, users)
	if err != nil {
		return nil, fmt.Errorf("valid tokens of %d users: %w", len(users), err)
	}
	out := make([]Device, 0, len(users))
	var d Device
	_, err = pgx.ForEachRow(rows, []any{&d.UserID, &d.Platform, &d.Token}, func() error {
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("valid tokens of %d users: %w", len(users), err)
	}
	return out, nil
}
