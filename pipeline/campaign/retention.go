package campaign

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// MinKeepMessages is the least time a direct message is kept past its
// expiry: as long as Redis keeps its counters (KeepMessageCounters). Its id
// may be used again once the row is gone, and a new message must not find
// the old one's counts and marks under it.
const MinKeepMessages = KeepMessageCounters

// purgeMessagesSQL deletes up to $2 direct messages that expired before $1,
// found by the campaigns_messages_created index (migration 00012): a
// message's expiry is its creation plus its TTL (messages are never
// scheduled). Campaigns are kept.
const purgeMessagesSQL = `DELETE FROM campaigns c USING (
	SELECT id FROM campaigns
	WHERE kind = 'message' AND created_at < $1 AND created_at + ttl_seconds * interval '1 second' < $1
	LIMIT $2 FOR UPDATE SKIP LOCKED) old
WHERE c.id = old.id`

// PurgeMessages deletes at most limit direct messages that expired before
// before, and returns how many it deleted. A chat app writes millions a
// day, each a row; nothing is sent for them past their
// expiry, and their counts are gone from Redis past KeepMessageCounters.
func PurgeMessages(ctx context.Context, db *pgxpool.Pool, before time.Time, limit int) (int64, error) {
	tag, err := db.Exec(ctx, purgeMessagesSQL, before, limit)
	if err != nil {
		return 0, fmt.Errorf("purge messages expired before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return tag.RowsAffected(), nil
}
