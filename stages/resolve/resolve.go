// Package resolve is the stage that turns a range of a channel's subscribers
// into user ids for dedupe: it reads the range (a keyset scan of the
// subscriptions primary key), drops users who muted the channel or the
// campaign's category (preferences in Redis, one pipelined lookup per range),
// groups the rest by user partition and emits compact id batches.
package resolve

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// Config is what the stage needs.
type Config struct {
	Redis rueidis.Client
	DB    *pgxpool.Pool
	Keys  pipeline.Keys
	Log   zerolog.Logger
	// Parallel is how many ranges of a batch are resolved at once (each
	// holds a database connection while it reads); default 4.
	Parallel int
	// MaxEntryIDs caps the ids of one dedupe entry; default 2000.
	MaxEntryIDs int
	// PageSize is the keyset page read per query; default 10000.
	PageSize int
}

// Handler is the resolve stage's batch handler.
type Handler struct {
	cfg       Config
	campaigns *campaignCache
	cancels   *campaign.Cancels
	prefixes  []atomic.Pointer[string] // per partition, see prefsPrefix
}

// New builds the handler.
func New(cfg Config) *Handler {
	if cfg.Parallel <= 0 {
		cfg.Parallel = 4
	}
	if cfg.MaxEntryIDs <= 0 {
		cfg.MaxEntryIDs = 2000
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 10000
	}
	cancels := campaign.NewCancels(cfg.Redis, cfg.Keys)
	cancels.DB = cfg.DB // a cancel whose flag Redis lost is seen in its record
	return &Handler{cfg: cfg, campaigns: newCampaignCache(cfg.DB), cancels: cancels,
		prefixes: make([]atomic.Pointer[string], cfg.Keys.Partitions)}
}

// rangeEntry is a parsed ranges entry.
type rangeEntry struct {
	index                 int // in the batch
	campaign, channel, id string
	lo, hi                int64
}

// Handle resolves every range of the batch. Each range's dedupe entries are
// emitted before the range is recorded as resolved, and the runner acks the
// batch after that: a crash anywhere repeats work, which dedupe makes
// harmless, and never loses a range.
//
// A range delivered again is read again, even if it is recorded: its id may
// come back with other bounds (split re-cut the campaign after Redis lost
// its checkpoint while subscriptions changed), and only reading it again
// covers them.
func (h *Handler) Handle(ctx context.Context, b *pipeline.Batch) error {
	ranges := make([]rangeEntry, 0, len(b.Entries))
	for i, e := range b.Entries {
		r, err := parse(i, e)
		if err != nil {
			b.DeadLetter(i, pipeline.BadInput(err))
			continue
		}
		ranges = append(ranges, r)
	}
	var mu sync.Mutex
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(h.cfg.Parallel)
	for _, r := range ranges {
		g.Go(func() error {
			if canceled, err := h.cancels.Canceled(ctx, r.campaign); err != nil || canceled {
				return err // canceled: the range is acked unread
			}
			err := h.resolve(ctx, r, b.EmitNow)
			if errors.Is(err, campaign.ErrNotFound) {
				// Campaign rows are written before anything is emitted
				// for them: this range can never be resolved.
				mu.Lock()
				b.DeadLetter(r.index, err)
				mu.Unlock()
				return nil
			}
			return err
		})
	}
	return g.Wait()
}

func parse(i int, e pipeline.Entry) (rangeEntry, error) {
	re, err := pipeline.ParseRangeEntry(e.Fields)
	r := rangeEntry{index: i, campaign: re.Campaign, channel: re.Channel, id: re.Range, lo: re.Lo, hi: re.Hi}
	if err != nil {
		return r, err
	}
	if err := campaign.ValidateID(r.campaign); err != nil {
		return r, fmt.Errorf("field %s: %w", pipeline.FieldCampaign, err)
	}
	// A channel no campaign can name: PostgreSQL would refuse it as the
	// subscribers query's argument (not UTF-8: 22021), an error for the
	// whole batch that held the other ranges back until all were
	// dead-lettered together.
	if err := devices.ValidateName(pipeline.FieldChannel, r.channel); err != nil {
		return r, err
	}
	return r, nil
}

// resolve reads one range, filters it, emits it to dedupe and records it.
func (h *Handler) resolve(ctx context.Context, r rangeEntry, emitNow func(context.Context, ...pipeline.Message) error) error {
	camp, err := h.campaigns.get(ctx, r.campaign)
	if err != nil {
		return err
	}
	users, err := h.subscribers(ctx, r)
	if err != nil {
		return err
	}
	muted, err := h.muted(ctx, users, r.channel, camp.Category)
	if err != nil {
		return err
	}
	// Each reading has its own tag, carried by its entries and recorded
	// with its count: progress waits for dedupe to have read the entries
	// of the reading on record (pipeline.RangeRecord).
	reading := strconv.FormatUint(rand.Uint64(), 36)
	msgs := h.entries(r, reading, camp.Lane(), users, muted)
	// Emitted before the range's count is recorded (progress reads the
	// count as "this range's users are on their way").
	if err := emitNow(ctx, msgs...); err != nil {
		return fmt.Errorf("resolve range %s of %s: %w", r.id, r.campaign, err)
	}
	c := h.cfg.Redis
	key := h.cfg.Keys.RangeUsers(r.campaign)
	for _, res := range c.DoMulti(ctx,
		c.B().Hset().Key(key).FieldValue().FieldValue(r.id, pipeline.RangeRecord{Users: int64(len(users)), Reading: reading}.String()).Build(),
		c.B().Pexpireat().Key(key).MillisecondsTimestamp(campaign.CountersExpireMs(camp.ExpiresAt().UnixMilli())).Build(),
	) {
		if err := res.Error(); err != nil {
			return fmt.Errorf("record range %s of %s: %w", r.id, r.campaign, err)
		}
	}
	return nil
}

// subscribers reads the range's user ids in ascending order, a keyset page at
// a time (a range holds about --range-size users, but subscriptions added
// since the split land in it too). A page comes back as one int8[] value:
// one protocol message instead of one per subscriber, which costs both
// PostgreSQL and this process less per id than rows would.
func (h *Handler) subscribers(ctx context.Context, r rangeEntry) ([]int64, error) {
	users := make([]int64, 0, min(h.cfg.PageSize, 8192))
	lo := r.lo
	for {
		rows, err := h.cfg.DB.Query(ctx, `
			SELECT array_agg(user_id) FROM (
				SELECT user_id FROM subscriptions
				WHERE channel = $1 AND user_id >= $2 AND user_id <= $3 AND user_id > 0
				ORDER BY user_id LIMIT $4) page`, r.channel, lo, r.hi, h.cfg.PageSize)
		if err != nil {
			return nil, fmt.Errorf("read range %s of %s: %w", r.id, r.campaign, err)
		}
		var page []int64
		for rows.Next() {
			var ok bool
			if rows.FieldDescriptions()[0].Format == pgx.BinaryFormatCode {
				page, ok = appendInt8Array(page, rows.RawValues()[0])
			}
			if !ok {
				page = page[:0]
				if err := rows.Scan(&page); err != nil {
					rows.Close()
					return nil, fmt.Errorf("read range %s of %s: %w", r.id, r.campaign, err)
				}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read range %s of %s: %w", r.id, r.campaign, err)
		}
		// array_agg keeps the subquery's order in practice, which SQL does
		// not promise: check, and sort if it ever does not.
		if !slices.IsSorted(page) {
			slices.Sort(page)
		}
		users = append(users, page...)
		if len(page) < h.cfg.PageSize || page[len(page)-1] == math.MaxInt64 {
			return users, nil
		}
		lo = page[len(page)-1] + 1
	}
}

// appendInt8Array decodes PostgreSQL's binary form of a one-dimensional
// int8[] without NULLs; ok is false for anything else (the caller then
// lets pgx decode it). A NULL (no rows) is an empty page.
func appendInt8Array(dst []int64, raw []byte) ([]int64, bool) {
	if raw == nil {
		return dst, true
	}
	if len(raw) < 12 {
		return dst, false
	}
	ndim, hasNull := binary.BigEndian.Uint32(raw), binary.BigEndian.Uint32(raw[4:])
	if ndim == 0 {
		return dst, true
	}
	if ndim != 1 || hasNull != 0 || len(raw) < 20 {
		return dst, false
	}
	n := int(binary.BigEndian.Uint32(raw[12:]))
	body := raw[20:]
	if len(body) != n*12 {
		return dst, false
	}
	for i := range n {
		e := body[i*12:]
		if binary.BigEndian.Uint32(e) != 8 {
			return dst, false
		}
		dst = append(dst, int64(binary.BigEndian.Uint64(e[4:])))
	}
	return dst, true
}

// entries groups users by partition, reached and muted apart, in entries of
// at most MaxEntryIDs ids, each list ascending, into dedupe's stream of the
// campaign's lane (its priority).
func (h *Handler) entries(r rangeEntry, reading string, lane pipeline.Lane, users []int64, muted []bool) []pipeline.Message {
	type group struct{ reached, muted []int64 }
	byP := map[int]*group{}
	var order []int
	for i, u := range users {
		p := h.cfg.Keys.UserPartition(u)
		g := byP[p]
		if g == nil {
			g = &group{}
			byP[p] = g
			order = append(order, p)
		}
		if muted[i] {
			g.muted = append(g.muted, u)
		} else {
			g.reached = append(g.reached, u)
		}
	}
	slices.Sort(order)
	var msgs []pipeline.Message
	for _, p := range order {
		g := byP[p]
		for len(g.reached)+len(g.muted) > 0 {
			nu := min(len(g.reached), h.cfg.MaxEntryIDs)
			nm := min(len(g.muted), h.cfg.MaxEntryIDs-nu)
			e := pipeline.DedupeEntry{Campaign: r.campaign, Range: r.id, Reading: reading, Users: g.reached[:nu], Muted: g.muted[:nm]}
			msgs = append(msgs, pipeline.Message{Stream: h.cfg.Keys.Stream(lane.Stream(pipeline.StreamDedupe), p), Fields: e.Fields()})
			g.reached, g.muted = g.reached[nu:], g.muted[nm:]
		}
	}
	return msgs
}
