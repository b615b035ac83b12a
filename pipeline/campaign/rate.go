package campaign

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// SetRate sets the own cap (rate_per_second; 0 for none, else up to
// MaxRatePerSecond) of a campaign that is scheduled, splitting or running,
// and returns its report: a *ValidationError for a rate out of bounds,
// ErrNotFound for an unknown id, ErrIsMessage for a direct message's (as
// Cancel: a message is not a campaign here), ErrFinished for a done,
// canceled or failed one.
//
// PostgreSQL's row is written first: it is the record, and split reads it
// at each call (its cut-ahead follows at once). Then the campaign's hash
// (HashRatePerSecond), which deliver follows within RatePoll+rateTrust
// (Rates). A Redis that fails here is an error, but the record holds: a
// deliver's watcher (Rates.DB) writes the field from it within recordPoll,
// and so does the next progress read (status, a list, the console), as
// they set a lost cancel flag again.
func SetRate(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys, id string, rate int) (Report, error) {
	if rate < 0 || rate > MaxRatePerSecond {
		return Report{ID: id}, invalid("rate_per_second: must be a whole number of sends per second from 0 (no cap of its own) to %d, got %d",
			MaxRatePerSecond, rate)
	}
	r, err := loadCampaign(ctx, db, id)
	if err != nil {
		return Report{ID: id}, err
	}
	rep, err := r.progress(ctx, rdb, db, keys, Reader{}) // records a done or a cancel first
	switch {
	case err != nil:
		return rep, err
	case Final(rep.State):
		return rep, fmt.Errorf("campaign %q is %s: %w", id, rep.State, ErrFinished)
	}
	// The rate it was created with is kept the first time it changes:
	// Create compares a retry of the original request with it.
	err = db.QueryRow(ctx, `
		UPDATE campaigns SET requested_rate = coalesce(requested_rate, rate_per_second), rate_per_second = $2
		WHERE id = $1 AND state IN ('scheduled', 'splitting', 'running') RETURNING id`, id, rate).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		// It finished (or was canceled) between the two reads.
		rep, err = Progress(ctx, rdb, db, keys, id)
		if err != nil {
			return rep, err
		}
		return rep, fmt.Errorf("campaign %q is %s: %w", id, rep.State, ErrFinished)
	}
	if err != nil {
		return rep, fmt.Errorf("set the rate of campaign %q: %w: %w", id, ErrPostgres, err)
	}
	if _, err := publishRate(ctx, rdb, keys, r.c, rate, anyRate); err != nil {
		return rep, fmt.Errorf("set the rate of campaign %q: recorded, not yet in Redis (the next status read sets it there): %w", id, err)
	}
	return Progress(ctx, rdb, db, keys, id)
}

// anyRate and noRate are publishRate's expectations: whatever the field
// holds, and the field absent.
const (
	anyRate = "*"
	noRate  = ""
)

// publishRateScript sets field ARGV[1] of the campaign hash KEYS[1] to
// ARGV[2] if it holds ARGV[3] (anyRate: whatever it holds; noRate: absent),
// and makes the hash expire at ARGV[4] (unix ms) as its counters do: on a
// hash Redis lost, HSET makes a new one. It returns 1 if it set it.
var publishRateScript = rueidis.NewLuaScript(`
if ARGV[3] ~= '*' then
  local v = redis.call('HGET', KEYS[1], ARGV[1])
  if (v or '') ~= ARGV[3] then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return 1
`)

// publishRate writes rate into campaign c's hash (HashRatePerSecond) if
// the field holds expect (anyRate, noRate, or a rate's text): a compare and
// set, so a reader repairing it from a record it read before a SetRate
// cannot put the old rate back over the new.
func publishRate(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, c Campaign, rate int, expect string) (bool, error) {
	exp := CountersExpireMs(c.ExpiresAt().UnixMilli())
	n, err := publishRateScript.Exec(ctx, rdb, []string{keys.Campaign(c.ID)},
		[]string{HashRatePerSecond, strconv.Itoa(rate), expect, strconv.FormatInt(exp, 10)}).AsInt64()
	if err != nil {
		return false, fmt.Errorf("campaign %q: publish its rate: %w", c.ID, err)
	}
	return n == 1, nil
}

// keepRate writes campaign c's rate into its hash again when Redis lost
// it (a failover, AOF's last second: the field absent, or an older rate
// than the record's), read as l: deliver follows the field, and would
// otherwise pace the campaign at its old rate. A field that differs from
// c (read before l) is compared with the record read again: a SetRate in
// between wrote both, and c is then the stale one.
func keepRate(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys, c Campaign, l Live) error {
	if l.RateKnown && l.Rate == c.RatePerSecond {
		return nil
	}
	seen := noRate
	if l.RateKnown {
		seen = strconv.Itoa(l.Rate)
		if err := db.QueryRow(ctx, `SELECT rate_per_second FROM campaigns WHERE id = $1`, c.ID).Scan(&c.RatePerSecond); err != nil {
			return fmt.Errorf("campaign %q: read its rate: %w: %w", c.ID, ErrPostgres, err)
		}
		if c.RatePerSecond == l.Rate {
			return nil
		}
	}
	_, err := publishRate(ctx, rdb, keys, c, c.RatePerSecond, seen)
	return err
}
