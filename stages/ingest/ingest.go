// Package ingest is the ingest stage: it reads device token events (register,
// delete, provider invalidation) from the ingest stream and writes them to
// PostgreSQL in bulk, one statement per batch, so an app-open storm costs a
// few bulk upserts instead of one database write per request.
package ingest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// Config is what the stage needs.
type Config struct {
	// DB is the pool the upserts run on. Its MaxConns bounds the stage's
	// PostgreSQL connections whatever the runner's concurrency.
	DB      *pgxpool.Pool
	Log     zerolog.Logger
	Metrics prometheus.Registerer // nil: no metrics
	Now     func() time.Time      // nil: time.Now (checks event times are not in the future)
	// KeepTombstones is how long deleted and invalidated devices are kept
	// (retention.go); 0 keeps them for ever.
	KeepTombstones time.Duration
}

// Handler is the ingest stage's batch handler.
type Handler struct {
	db      *pgxpool.Pool
	log     zerolog.Logger
	now     func() time.Time
	keep    time.Duration
	metrics *metrics
}

// New builds the handler; run it with pipeline.NewRunner on pipeline.StreamIngest.
func New(cfg Config) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{db: cfg.DB, log: cfg.Log, now: cfg.Now, keep: cfg.KeepTombstones, metrics: newMetrics(cfg.Metrics)}
}

// Handle decodes the batch (malformed entries go to the dead-letter stream,
// the rest carry on), drops registrations older than the tombstones kept
// (retention.go), keeps only the latest event of each token, and applies
// them in one statement. Returning nil after the statement committed is what
// lets the runner ack the batch: a crash before that redelivers it, and
// applying an event again changes nothing (events older than or as old as the
// row are ignored).
func (h *Handler) Handle(ctx context.Context, b *pipeline.Batch) error {
	now := h.now()
	events := make([]devices.Event, 0, len(b.Entries))
	malformed, expired := 0, 0
	for i, e := range b.Entries {
		ev, err := devices.ParseEvent(e.Fields, now)
		switch {
		case err != nil:
			b.DeadLetter(i, pipeline.BadInput(fmt.Errorf("malformed ingest entry: %w", err)))
			malformed++
		case h.expired(ev, now):
			expired++
		default:
			events = append(events, ev)
		}
	}
	if expired > 0 {
		h.log.Warn().Int("registrations", expired).Dur("keep_tombstones", h.keep).Str("stream", b.Stream).
			Msg("dropped registrations older than --keep-tombstones: a deletion they predate may be purged; the apps register again when they start")
	}
	latest := collapse(events)
	changed, err := apply(ctx, h.db, latest)
	if err != nil {
		return fmt.Errorf("apply %d device events of %s: %w", len(latest), b.Stream, err)
	}
	h.metrics.observe(malformed, expired, len(events)-len(latest), len(latest)-int(changed), int(changed))
	return nil
}

// collapse keeps the latest event of each (app, token), so one statement
// never touches a row twice; at equal event times the later entry in stream
// order wins. The result is sorted by (app, token): every transaction locks
// rows in the same order, so concurrent batches wait for each other instead of
// deadlocking, and the primary key is walked in order.
//
// It sorts positions, not events (an Event is 88 bytes to move), by (app,
// token, event time, stream order), and keeps the last of each token's run:
// no map of keys, which cost as much as the sort.
func collapse(events []devices.Event) []devices.Event {
	order := make([]int32, len(events))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(i, j int32) int {
		a, b := &events[i], &events[j]
		return cmp.Or(cmp.Compare(a.App, b.App), cmp.Compare(a.Token, b.Token), cmp.Compare(a.At, b.At), cmp.Compare(i, j))
	})
	out := make([]devices.Event, 0, len(events))
	for k, i := range order {
		if k+1 < len(order) {
			next := &events[order[k+1]]
			if next.Token == events[i].Token && next.App == events[i].App {
				continue // a later event of the same token follows
			}
		}
		out = append(out, events[i])
	}
	return out
}
