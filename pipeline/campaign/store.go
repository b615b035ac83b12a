package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// Create stores a campaign and appends it to the campaigns stream. It is
// idempotent by id: creating an id that exists with the same content returns
// the stored campaign and created=false without sending anything new; with
// different content it returns ErrConflict. c is normalized first (a
// *ValidationError if it is invalid); then a stored id is answered from its
// row, and only a new one must pass admit (Admit), in order.
//
// The row is written before the stream entry, and marked queued after it: a
// crash or a Redis outage in between leaves an unqueued row, and the retry
// that any client makes after an error queues it then, and reports
// created=true: that retry is what started the campaign. Requests with the
// same id at once queue it once (queueOnce), and one of them reports
// created=true. A failure after the row was written is ErrNotQueued.
func Create(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys, c Campaign, admit ...Admit) (Campaign, bool, error) {
	if err := c.Normalize(); err != nil {
		return c, false, err
	}
	data := []byte(c.Data)
	if len(data) == 0 {
		data = []byte("{}")
	}
	ttl := int64(c.TTL / time.Second)
	var sendAt *time.Time
	if !c.SendAt.IsZero() {
		sendAt = &c.SendAt
	}
	note := storedNotification(c.Notification)
	same := func() (bool, error) { return sameCampaign(ctx, db, &c, data, ttl, sendAt, note) }
	queued, err := storedOr(ctx, c, admit, same, func() error {
		// A send_at already past starts the campaign now; the row still
		// keeps it, so a retry of the same request compares equal.
		return db.QueryRow(ctx, `
			INSERT INTO campaigns (id, app, channels, category, title, body, data, ttl_seconds,
			                       send_at, rate_per_second, priority, state, started_at, notification)
			VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11,
			        CASE WHEN $9 > now() THEN 'scheduled' ELSE 'splitting' END,
			        CASE WHEN $9 > now() THEN NULL ELSE now() END, $12::jsonb)
			ON CONFLICT (id) DO NOTHING
			RETURNING created_at, state`,
			c.ID, c.App, c.Channels, c.Category, c.Title, c.Body, data, ttl, sendAt, c.RatePerSecond, c.Priority, note).
			Scan(&c.CreatedAt, &c.State)
	})
	var refusal admitRefusal
	switch {
	case errors.As(err, &refusal):
		return c, false, refusal.err
	case errors.Is(err, ErrOtherKind), errors.Is(err, ErrConflict):
		return c, false, err
	case err != nil:
		if verr := refused(err); verr != nil {
			return c, false, verr
		}
		return c, false, fmt.Errorf("store campaign %q: %w", c.ID, err)
	case queued:
		return c, false, nil
	}
	created, err := queueOnce(ctx, db, c.ID, func() error { return enqueue(ctx, rdb, keys, c) })
	if err != nil {
		return c, false, fmt.Errorf("%w: %w", ErrNotQueued, err)
	}
	return c, created, nil
}

// sameCampaign reads the row that holds c's id into c (its creation time,
// state and rate): whether it is queued, or ErrOtherKind for a direct
// message's, ErrConflict when its content is not c's, pgx.ErrNoRows when
// there is none.
//
// Channels compare as a set: the audience is their union, and a client
// building the list from a set may retry in another order. The rate
// compared is the one the campaign was created with (requested_rate, once
// SetRate changed it): a retry of a POST that timed out repeats that rate,
// and is still the same request after an operator changed it. The campaign
// goes on with the rate of the record, which is what queueing it publishes.
func sameCampaign(ctx context.Context, db *pgxpool.Pool, c *Campaign, data []byte, ttl int64, sendAt *time.Time, note []byte) (queued bool, err error) {
	var same bool
	var kind string
	err = db.QueryRow(ctx, `
		SELECT created_at, state, queued_at IS NOT NULL, kind, rate_per_second,
		       (app, ARRAY(SELECT unnest(channels) ORDER BY 1), category, title, body, data, ttl_seconds,
		        coalesce(requested_rate, rate_per_second), priority) =
		       ($2, ARRAY(SELECT unnest($3::text[]) ORDER BY 1), $4, $5, $6, $7::jsonb, $8, $10, $11)
		       AND send_at IS NOT DISTINCT FROM $9
		       AND notification IS NOT DISTINCT FROM $12::jsonb
		FROM campaigns WHERE id = $1`,
		c.ID, c.App, c.Channels, c.Category, c.Title, c.Body, data, ttl, sendAt, c.RatePerSecond, c.Priority, note).
		Scan(&c.CreatedAt, &c.State, &queued, &kind, &c.RatePerSecond, &same)
	switch {
	case err != nil:
		return false, err
	case kind != KindCampaign:
		return false, fmt.Errorf("campaign %q: a direct message has this id: %w", c.ID, ErrOtherKind)
	case !same:
		return false, fmt.Errorf("campaign %q: %w", c.ID, ErrConflict)
	}
	return queued, nil
}

// queueOnce runs enqueue for the stored row id and marks the row queued,
// unless it is queued already, holding the row's lock meanwhile: requests
// with the same id at once (a client's retry racing its first try, two API
// replicas) would otherwise each see it unqueued and queue it again, and a
// raw-token message's entries skip dedupe, so each copy would be sent. It
// reports whether this call queued it. The row was committed before (the
// INSERT), so no entry ever precedes its row; a failure rolls back, leaving
// the row unqueued for the next try.
func queueOnce(ctx context.Context, db *pgxpool.Pool, id string, enqueue func() error) (bool, error) {
	created := false
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var queued bool
		if err := tx.QueryRow(ctx, `SELECT queued_at IS NOT NULL FROM campaigns WHERE id = $1 FOR UPDATE`, id).Scan(&queued); err != nil {
			return fmt.Errorf("lock %q: %w", id, err)
		}
		if queued {
			return nil
		}
		if err := enqueue(); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE campaigns SET queued_at = now() WHERE id = $1`, id); err != nil {
			return fmt.Errorf("mark %q queued: %w", id, err)
		}
		created = true
		return nil
	})
	return created && err == nil, err
}

// ErrNotQueued is a campaign stored but not (or not surely) queued for
// sending: Redis or PostgreSQL failed after the row was written. Creating it
// again with the same id queues it; it is sent once however often that is
// done.
var ErrNotQueued = errors.New("campaign stored but not queued")

// StoredData is data as PostgreSQL's jsonb gives it back, which is what
// deliver renders: jsonb spells numbers out ({"n":1e999} comes back a
// thousand digits long) and adds a space after each ':' and ','. A value
// jsonb refuses is a *ValidationError.
func StoredData(ctx context.Context, db *pgxpool.Pool, data json.RawMessage) (json.RawMessage, error) {
	if len(data) == 0 {
		return nil, nil
	}
	var out []byte
	if err := db.QueryRow(ctx, `SELECT $1::jsonb::text`, []byte(data)).Scan(&out); err != nil {
		if verr := refused(err); verr != nil {
			return nil, verr
		}
		return nil, fmt.Errorf("read back campaign data: %w", err)
	}
	return out, nil
}

// refused turns PostgreSQL's refusal of a value (SQLSTATE class 22, data
// exception: a NUL in text, a number past numeric's range) into the
// *ValidationError it is: the same request will never succeed, so it is not
// an outage to retry. nil for any other error.
func refused(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || !strings.HasPrefix(pgErr.Code, "22") {
		return nil
	}
	return invalid("notification: PostgreSQL cannot store a value of this campaign (%s: %s); correct it", pgErr.Code, pgErr.Message)
}

// enqueue publishes the campaign's expiry (every stage reads it), then
// appends the campaign to its partition of the campaigns stream (or, when it
// is scheduled, to the stream's delayed set, due at send_at); queueOnce
// marks the row queued. Each step waits for the previous one: on a cluster
// they go to different nodes.
func enqueue(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, c Campaign) error {
	if err := publishExpiry(ctx, rdb, keys, c); err != nil {
		return fmt.Errorf("queue campaign %q: %w", c.ID, err)
	}
	msg := startMessage(keys, c.ID)
	if c.State == StateScheduled {
		// Released into the campaigns stream at send_at by split's runner;
		// scheduling again (a retry) only sets the same time again.
		if err := pipeline.EmitAt(ctx, rdb, c.SendAt, msg); err != nil {
			return fmt.Errorf("schedule campaign %q: %w", c.ID, err)
		}
	} else if _, err := pipeline.Emit(ctx, rdb, msg); err != nil {
		return fmt.Errorf("queue campaign %q: %w", c.ID, err)
	}
	return nil
}

// publishExpiry writes the campaign's expiry into its hash: dedupe refuses
// entries of a campaign without it, and Progress takes a campaign without it
// for one Redis lost. Its rate goes with it (HashRatePerSecond): deliver
// follows that field, and a resplit's row has the rate last set.
func publishExpiry(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, c Campaign) error {
	exp := c.ExpiresAt().UnixMilli()
	hash := keys.Campaign(c.ID)
	for _, res := range rdb.DoMulti(ctx,
		rdb.B().Hset().Key(hash).FieldValue().FieldValue(HashExpiresMs, strconv.FormatInt(exp, 10)).
			FieldValue(HashRatePerSecond, strconv.Itoa(c.RatePerSecond)).Build(),
		rdb.B().Pexpireat().Key(hash).MillisecondsTimestamp(CountersExpireMs(exp)).Build(),
	) {
		if err := res.Error(); err != nil {
			return err
		}
	}
	return nil
}

// Resplit re-runs a campaign from PostgreSQL (after Redis lost its entries,
// or everything): its expiry is published again, as at creation, its split
// checkpoint dropped, then it is appended to the campaigns stream
// (pipeline.Resplit). Split re-cuts it;
// dedupe and the sent marks suppress everyone already reached. It returns
// the new entry's id. A campaign still scheduled is scheduled again for its
// send_at instead (at once if that passed), as Create does: appended, split
// would start it there and then. It returns "" for it: no entry yet.
func Resplit(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys, id string) (string, error) {
	c, err := Load(ctx, db, id)
	if err != nil {
		return "", err
	}
	if err := publishExpiry(ctx, rdb, keys, c); err != nil {
		return "", fmt.Errorf("resplit %s: %w", id, err)
	}
	if c.State == StateScheduled {
		// Split has cut nothing of it: no checkpoint to drop.
		if err := pipeline.EmitAt(ctx, rdb, c.SendAt, startMessage(keys, id)); err != nil {
			return "", fmt.Errorf("resplit %s: %w", id, err)
		}
		return "", nil
	}
	// Split resumes a campaign from its checkpoint, which may have outlived
	// the ranges it records as cut (on a cluster, they live on other
	// nodes): resumed, a split that was done would cut nothing. Started
	// over, it cuts every range again (the same ids), and the campaign is
	// splitting until it has.
	hash := keys.Campaign(id)
	for _, res := range rdb.DoMulti(ctx,
		rdb.B().Del().Key(keys.SplitCheckpoint(id)).Build(),
		rdb.B().Hdel().Key(hash).Field(pipeline.CampaignSplitDone, pipeline.CampaignRangesTotal).Build(),
	) {
		if err := res.Error(); err != nil {
			return "", fmt.Errorf("resplit %s: %w", id, err)
		}
	}
	return pipeline.Resplit(ctx, rdb, keys, id)
}

// Load reads a campaign from PostgreSQL; ErrNotFound if there is none.
func Load(ctx context.Context, db *pgxpool.Pool, id string) (Campaign, error) {
	c, err := scanCampaign(db.QueryRow(ctx, `SELECT `+campaignColumns+` FROM campaigns WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Campaign{ID: id}, fmt.Errorf("campaign %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Campaign{ID: id}, fmt.Errorf("load campaign %q: %w", id, err)
	}
	return c, nil
}

// QueueLoad is Load queued on b, for a caller that reads the row in the
// same round trip as queries that need it (deliver: a message's tokens of
// its app). Once b's results are read, done gets the campaign, or
// ErrNotFound; any other error is the batch's (pgx.BatchResults.Close).
func QueueLoad(b *pgx.Batch, id string, done func(Campaign, error)) {
	b.Queue(`SELECT `+campaignColumns+` FROM campaigns WHERE id = $1`, id).QueryRow(func(row pgx.Row) error {
		c, err := scanCampaign(row)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			done(Campaign{ID: id}, fmt.Errorf("campaign %q: %w", id, ErrNotFound))
		case err != nil:
			return fmt.Errorf("load campaign %q: %w", id, err)
		default:
			done(c, nil)
		}
		return nil
	})
}

// QueueTokens queues on b the valid tokens of users of the app of campaign
// id (devices.ValidTokens), for a caller that reads the row with QueueLoad
// in the same round trip and would otherwise learn the app from it first:
// deliver's first batch of a campaign, every batch of a direct message.
// No row, no devices. The app's expression is here, with every other
// query of the campaigns table.
func QueueTokens(b *pgx.Batch, id string, users []int64, done func([]devices.Device)) {
	devices.QueueValidTokensOfApp(b, `(SELECT app FROM campaigns WHERE id = $1)`, id, users, done)
}

// LoadAll is Load of many campaigns in one query, by id; an id with no
// campaign is not in the map. A page of campaigns costs one query, not one
// per campaign (the console's list refreshes every second).
func LoadAll(ctx context.Context, db *pgxpool.Pool, ids []string) (map[string]Campaign, error) {
	rows, err := db.Query(ctx, `SELECT `+campaignColumns+` FROM campaigns WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("load campaigns: %w", err)
	}
	cs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Campaign, error) { return scanCampaign(r) })
	if err != nil {
		return nil, fmt.Errorf("load campaigns: %w", err)
	}
	out := make(map[string]Campaign, len(cs))
	for _, c := range cs {
		out[c.ID] = c
	}
	return out, nil
}

const campaignColumns = `id, app, channels, category, title, body, data, ttl_seconds, created_at,
	send_at, rate_per_second, priority, state, notification, kind`

func scanCampaign(row pgx.Row) (Campaign, error) {
	var (
		c      Campaign
		data   []byte
		ttl    int64
		sendAt *time.Time
	)
	err := row.Scan(&c.ID, &c.App, &c.Channels, &c.Category, &c.Title, &c.Body, &data, &ttl, &c.CreatedAt,
		&sendAt, &c.RatePerSecond, &c.Priority, &c.State, &c.Notification, &c.Kind)
	if err != nil {
		return c, err
	}
	if sendAt != nil {
		c.SendAt = *sendAt
	}
	if string(data) != "{}" {
		c.Data = json.RawMessage(data)
	}
	c.TTL = time.Duration(ttl) * time.Second
	return c, nil
}

// storedNotification is the notification column's value: NULL (nil) for a
// campaign or message of title, body and data only, which deliver renders
// from those columns (Content).
func storedNotification(n json.RawMessage) []byte {
	if len(n) == 0 {
		return nil
	}
	return n
}
