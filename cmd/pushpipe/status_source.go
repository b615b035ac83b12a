package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// campaignSource is the campaign's progress as campaign defines it
// (state, counters), plus the people done that the bar shows, summed from the
// counters. Without a database, or while it is down, status still shows the
// counters: an operator needs status most during an outage.
type campaignSource struct {
	rdb    rueidis.Client
	keys   pipeline.Keys
	db     *pgxpool.Pool // nil: no database configured, or dbDown
	dbDown error         // why the configured database could not be opened
}

func (s campaignSource) Progress(ctx context.Context, id string) (progressView, error) {
	v, err := s.progress(ctx, id)
	if err != nil {
		return v, err
	}
	return s.withReasons(ctx, v), nil
}

func (s campaignSource) progress(ctx context.Context, id string) (progressView, error) {
	counters := counterProgress{rdb: s.rdb, keys: s.keys}
	if s.dbDown != nil {
		// Started while PostgreSQL is down: what Redis holds, state
		// included, as the API answers then (campaign.RedisProgress).
		rep, err := campaign.RedisProgress(ctx, s.rdb, s.keys, id, s.pgDown())
		return s.report(ctx, id, rep, err)
	}
	if s.db == nil {
		v, known, err := counters.Progress(ctx, id)
		if err == nil && !known {
			// Zero counters would read as a campaign that reached nobody;
			// without PostgreSQL, Redis is the only word on the id.
			return v, fmt.Errorf("Redis holds no campaign or direct message of this id: check it (Redis keeps one for %d days after its TTL; "+
				"set PUSHPIPE_DATABASE_URL to read an older one's state)", int(campaign.KeepCounters.Hours()/24))
		}
		v.Note = "no PUSHPIPE_DATABASE_URL: counters only, state unknown"
		return v, err
	}
	rep, err := campaign.Progress(ctx, s.rdb, s.db, s.keys, id)
	return s.report(ctx, id, rep, err)
}

// pgDown is the error of a database that could not be opened, marked as
// PostgreSQL's.
func (s campaignSource) pgDown() error { return fmt.Errorf("%w: %w", campaign.ErrPostgres, s.dbDown) }

// report is the view of a campaign's report, or of the error it came with:
// a report of Redis alone (PostgreSQL down) is shown with its notice.
func (s campaignSource) report(ctx context.Context, id string, rep campaign.Report, err error) (progressView, error) {
	switch {
	case errors.Is(err, campaign.ErrIsMessage):
		return s.message(ctx, id)
	case errors.Is(err, campaign.ErrNotFound):
		return progressView{ID: id}, err
	case errors.Is(err, campaign.ErrNotLive):
		return progressView{ID: id}, fmt.Errorf("Redis holds no campaign or direct message of this id, and PostgreSQL, which keeps older ones, is unavailable: %w", err)
	case err != nil && !errors.Is(err, campaign.ErrPartial):
		v, _, cerr := counterProgress{rdb: s.rdb, keys: s.keys}.Progress(ctx, id)
		v.Note = "campaign state unavailable (" + err.Error() + "): counters only"
		return v, cerr
	}
	v := progressView{ID: id, State: rep.State, Counts: rep.Counts, Error: rep.Error, Done: rep.Done, Audience: rep.Audience, Note: rep.RecordUnavailable}
	if rep.PastExpiry() {
		v.PastExpiry = &pastExpiry{ExpiresAt: rep.ExpiresAt, FinishAt: time.UnixMilli(rep.ExpectedFinishMs)}
	}
	v.RatePerSecond, v.SplitStopped = rep.RatePerSecond, rep.SplitStopped
	if !campaign.Final(rep.State) {
		v.ExpectedFinishMs, v.StalledSinceMs, v.QueuedSinceMs = rep.ExpectedFinishMs, rep.StalledSinceMs, rep.QueuedSinceMs
	}
	if rep.State == campaign.StateScheduled || rep.State == campaign.StateCanceled && rep.StartedAt == nil {
		v.SendAt = rep.SendAt
	}
	return v, nil
}

// message is a direct message's progress (campaign.MessageProgress).
func (s campaignSource) message(ctx context.Context, id string) (progressView, error) {
	var m campaign.MessageReport
	var err error
	if s.dbDown != nil {
		m, err = campaign.RedisMessageProgress(ctx, s.rdb, s.keys, id, s.pgDown())
	} else {
		m, err = campaign.MessageProgress(ctx, s.rdb, s.db, s.keys, id)
	}
	if err != nil && !errors.Is(err, campaign.ErrPartial) {
		return progressView{ID: id, Kind: "message"}, err
	}
	v := progressView{ID: id, Kind: "message", State: m.State, Done: m.UsersDone, RawTokens: m.RawTokens, Note: m.RecordUnavailable, Audience: m.Counting}
	v.Targets, v.Muted, v.Sent, v.Failed, v.InvalidTokens, v.NoDevices = m.Targets, m.Muted, m.Sent, m.Failed, m.InvalidTokens, m.NoDevices
	v.FirstSendMs, v.LastSendMs = m.FirstSendMs, m.LastSendMs
	return v, nil
}

// counterProgress is the counters alone (campaign.Counters): the state
// needs PostgreSQL, so it is left unknown.
type counterProgress struct {
	rdb  rueidis.Client
	keys pipeline.Keys
}

// Progress also says whether Redis knows the id at all (campaign.Live's
// Known).
func (s counterProgress) Progress(ctx context.Context, id string) (progressView, bool, error) {
	l, err := campaign.Counters(ctx, s.rdb, s.keys, id)
	if err != nil {
		return progressView{ID: id, State: "unknown"}, false, err
	}
	v := progressView{ID: id, State: "unknown", Counts: l.Counts, Error: l.FailReason, Done: l.UsersDone}
	if l.Message {
		// Without PostgreSQL a message read as "campaign m1" with a
		// campaign's counters; its hash in Redis says what it is.
		v.Kind = "message"
	}
	return v, l.Known, nil
}
