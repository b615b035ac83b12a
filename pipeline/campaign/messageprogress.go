package campaign

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// States of a message.
const (
	MessageSending = "sending"
	MessageDone    = "done"
)

// MessageReport is DESIGN's GET /v1/messages/{id}: Targets and Muted count
// people, Sent, Failed and InvalidTokens devices; send times are unix ms, 0
// before the first send.
type MessageReport struct {
	ID            string `json:"id"`
	State         string `json:"state"`
	Targets       int64  `json:"targets"`
	Sent          int64  `json:"sent"`
	Failed        int64  `json:"failed"`
	InvalidTokens int64  `json:"invalid_tokens"`
	Muted         int64  `json:"muted"`
	FirstSendMs   int64  `json:"first_send_ms"`
	LastSendMs    int64  `json:"last_send_ms"`
	// NoDevices counts targets with no device of the app (unknown users
	// among them): done, with nothing sent (Counts.NoDevices).
	NoDevices int64 `json:"no_devices"`
	// UsersDone counts targets that reached a terminal state (status's
	// bar); not in DESIGN's object.
	UsersDone int64 `json:"-"`
	// RecordUnavailable is Report.RecordUnavailable: set on a report read
	// from Redis alone (ErrPartial), whose RawTokens is then unknown.
	RecordUnavailable string `json:"record_unavailable,omitempty"`
	// RawTokens: the message lists raw tokens, so its targets count
	// tokens, not people; not in DESIGN's object.
	RawTokens bool `json:"-"`
	// Counting is how many users (or tokens) it lists while dedupe has
	// not read them all yet, 0 once it has: Targets are then only those
	// found so far. `send --user 1,2,3 --wait` opened on "0 / 0 people"
	// when its first read came before dedupe's. Not in DESIGN's object.
	Counting int64 `json:"-"`
}

// MessageProgress reports a message's state and counters, read from the
// same per-partition counters as a campaign's (Progress): ErrNotFound for an
// id that names no message. It is done once dedupe read every listed user
// and deliver brought every target to a terminal state. While PostgreSQL
// fails, a message Redis holds is reported from Redis alone, with
// ErrPartial (RedisMessageProgress).
func MessageProgress(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys, id string) (MessageReport, error) {
	rep := MessageReport{ID: id, State: MessageSending}
	var (
		kind string
		raw  bool
	)
	err := readRecord(ctx, func(ctx context.Context) error {
		return db.QueryRow(ctx, `SELECT kind, coalesce(raw_tokens, cardinality(tokens) > 0, false) FROM campaigns WHERE id = $1`, id).Scan(&kind, &raw)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return rep, fmt.Errorf("message %q: %w", id, ErrNotFound)
	case err != nil:
		err = fmt.Errorf("load message %q: %w: %w", id, ErrPostgres, err)
		if outage(ctx, err) {
			return RedisMessageProgress(ctx, rdb, keys, id, err)
		}
		return rep, err
	case kind != KindMessage:
		return rep, fmt.Errorf("message %q: %w", id, ErrIsCampaign)
	}
	reps, err := messageCounters(ctx, rdb, keys, []string{id})
	if err != nil {
		return rep, err
	}
	reps[0].RawTokens = raw
	return reps[0], nil
}

// messageCounters reads the counters of messages in one pipelined call: per
// message its listed users and every partition's keys.Stats hash.
func messageCounters(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, ids []string) ([]MessageReport, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	per := 1 + keys.Partitions
	cmds := make(rueidis.Commands, 0, per*len(ids))
	for _, id := range ids {
		cmds = append(cmds, rdb.B().Hget().Key(keys.Campaign(id)).Field(HashMessageUsers).Build())
		for p := range keys.Partitions {
			cmds = append(cmds, rdb.B().Hmget().Key(keys.Stats(p, id)).Field(statFields...).Build())
		}
	}
	res := rdb.DoMulti(ctx, cmds...)
	out := make([]MessageReport, len(ids))
	for i, id := range ids {
		rep, err := messageReport(id, res[i*per:(i+1)*per])
		if err != nil {
			return nil, err
		}
		out[i] = rep
	}
	return out, nil
}

// messageReport sums one message's replies: its listed users, then its
// partitions' counters.
func messageReport(id string, res []rueidis.RedisResult) (MessageReport, error) {
	rep := MessageReport{ID: id, State: MessageSending}
	listed, err := res[0].AsInt64()
	if err != nil && !rueidis.IsRedisNil(err) {
		return rep, fmt.Errorf("progress of message %q: %w: %w", id, ErrRedis, err)
	}
	var in int64
	for _, r := range res[1:] {
		vals, err := r.ToArray()
		if err != nil {
			return rep, fmt.Errorf("progress of message %q: %w: %w", id, ErrRedis, err)
		}
		in += intAt(vals, 0)
		rep.Targets += intAt(vals, 1)
		rep.Muted += intAt(vals, 2)
		rep.UsersDone += intAt(vals, 4)
		rep.Sent += intAt(vals, 5)
		rep.Failed += intAt(vals, 6)
		rep.InvalidTokens += intAt(vals, 7)
		if first := intAt(vals, 8); first > 0 && (rep.FirstSendMs == 0 || first < rep.FirstSendMs) {
			rep.FirstSendMs = first
		}
		rep.LastSendMs = max(rep.LastSendMs, intAt(vals, 9))
		rep.NoDevices += intAt(vals, 12)
	}
	if in < listed {
		rep.Counting = listed
	}
	if listed > 0 && in >= listed && rep.UsersDone >= rep.Targets {
		rep.State = MessageDone
	}
	return rep, nil
}
