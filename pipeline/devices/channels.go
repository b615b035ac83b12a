package devices

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Channel is a channel and how many users subscribe to it.
type Channel struct {
	Channel     string `json:"channel"`
	Subscribers int64  `json:"subscribers"`
	// Capped: a list counted this channel to ListCountCap and stopped, so
	// Subscribers is a floor; ChannelSubscribers counts them all.
	Capped bool `json:"capped,omitempty"`
}

// ListCountCap is as far as a page of ListChannels counts each channel's
// subscribers. An exact count reads the channel's whole range of the key:
// a page holding a channel of 9M took 3-9 s on the 2-core test machine,
// for a list an operator reads at a glance; capped, a page reads at most
// limit × ListCountCap entries, and a big channel reads "100,000+".
const ListCountCap = 100_000

// CountTimeout bounds a read of channels for the API and the console: one
// exact count of a channel of millions (ChannelSubscribers) takes a second
// or more, where their other reads are bounded for Redis.
const CountTimeout = 30 * time.Second

// Bounds of a page of ListChannels.
const (
	DefaultChannelLimit = 100
	MaxChannelLimit     = 1000
)

// ErrNoChannel is ChannelSubscribers' error for a channel nobody
// subscribes to: a channel exists only through its subscriptions.
var ErrNoChannel = errors.New("channel has no subscribers")

// channelsSQL lists the channel names after $1 in order, and counts the
// subscribers of the first $2 of them, up to $3 each. There is no table of channels: a
// DISTINCT or GROUP BY over subscriptions reads every row (10M of them)
// for a page of names, so the names come by a skip scan of the primary key
// (channel, user_id): each step of the recursion is one index probe for
// the next name past the last. Each count is an index-only scan of that
// channel's range of the key, stopped at $3 (ListCountCap+1: one past the
// cap tells a capped count), so a page costs at most $2 × $3 entries, not
// the table; the name $2+1 is only looked up, to tell whether there is
// a next page (CASE evaluates its subquery only for the rows it selects).
const channelsSQL = `WITH RECURSIVE names (channel, n) AS (
	(SELECT channel, 1 FROM subscriptions WHERE channel > $1 ORDER BY channel LIMIT 1)
	UNION ALL
	SELECT (SELECT s.channel FROM subscriptions s WHERE s.channel > names.channel ORDER BY s.channel LIMIT 1), n + 1
	FROM names WHERE names.channel IS NOT NULL AND n <= $2
)
SELECT channel, CASE WHEN n <= $2 THEN (SELECT count(*) FROM (SELECT FROM subscriptions s WHERE s.channel = names.channel LIMIT $3) c) END
FROM names WHERE channel IS NOT NULL ORDER BY channel`

// channelSQL counts one channel's subscribers by its range of the key.
const channelSQL = `SELECT count(*) FROM subscriptions WHERE channel = $1`

// ListChannels returns the channels whose names come after after (""
// from the first), in name order, up to limit of them (1 to
// MaxChannelLimit; the caller validates it), with their subscribers, and
// next: the after of the following page, "" when this one is the last.
// Only channels with a subscriber exist. Counts stop at ListCountCap
// (Channel.Capped).
func ListChannels(ctx context.Context, db *pgxpool.Pool, after string, limit int) (page []Channel, next string, err error) {
	rows, err := db.Query(ctx, channelsSQL, after, limit, ListCountCap+1)
	if err != nil {
		return nil, "", fmt.Errorf("list channels: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Channel, error) {
		var c Channel
		var n *int64 // NULL for the name past the page
		err := r.Scan(&c.Channel, &n)
		if n != nil {
			c.Subscribers = *n
		}
		if c.Subscribers > ListCountCap {
			c.Subscribers, c.Capped = ListCountCap, true
		}
		return c, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("list channels: %w", err)
	}
	page, more := firstN(out, limit)
	if more {
		next = page[len(page)-1].Channel
	}
	return page, next, nil
}

// ChannelSubscribers returns how many users subscribe to channel, or
// ErrNoChannel when none does.
func ChannelSubscribers(ctx context.Context, db *pgxpool.Pool, channel string) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, channelSQL, channel).Scan(&n); err != nil {
		return 0, fmt.Errorf("channel %s: %w", channel, err)
	}
	if n == 0 {
		return 0, ErrNoChannel
	}
	return n, nil
}
