package devices

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// audienceSQL answers, for a new campaign, whether its app has an active
// device and which of its channels have no subscriber: both from the
// leading columns of an index (devices_app_user_active, the subscriptions
// key), so it costs a few index probes however large the tables.
const audienceSQL = `SELECT
	EXISTS (SELECT 1 FROM devices WHERE app = $1 AND state = 0),
	ARRAY(SELECT c FROM unnest($2::text[]) AS c
	      WHERE NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.channel = c))`

// Audience tells whether app has any active device, and lists the channels
// nobody subscribes to.
func Audience(ctx context.Context, db *pgxpool.Pool, app string, channels []string) (hasDevices bool, empty []string, err error) {
	if err := db.QueryRow(ctx, audienceSQL, app, channels).Scan(&hasDevices, &empty); err != nil {
		return false, nil, fmt.Errorf("audience of app %s: %w", app, err)
	}
	return hasDevices, empty, nil
}
