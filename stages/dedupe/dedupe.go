// Package dedupe is the stage that makes "one notification per person" true
// across channels: per partition, one atomic script marks each (campaign,
// user), forwards only first sightings to the same partition's deliver
// stream, counts targets, repeats and mutes, and acks its input.
package dedupe

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// Config is what the stage needs.
type Config struct {
	Redis rueidis.Client
	Keys  pipeline.Keys
	Log   zerolog.Logger
}

// Handler is the dedupe stage's batch handler.
type Handler struct {
	cfg     Config
	expiry  expiries
	cancels *campaign.Cancels
}

// New builds the handler.
func New(cfg Config) *Handler {
	return &Handler{cfg: cfg, cancels: campaign.NewCancels(cfg.Redis, cfg.Keys)}
}

// entry is a parsed dedupe entry.
type entry struct {
	index        int // in the batch
	id, campaign string
	rangeID      string
	reading      string // resolve's tag of the range's reading, "" for messages and older entries
	u            string // the encoded reached ids, forwarded as is when all are new
	reached      []int64
	muted        []int64
	force        bool
	message      bool  // a direct message's (pipeline.MessageRange)
	expires      int64 // the campaign's expiry as the entry carries it (pipeline.FieldExpires), 0 if not
}

// Handle dedupes one batch: one script, run by the runner as the batch's
// commit (pipeline.Batch.Commit), atomic with the ack.
func (h *Handler) Handle(ctx context.Context, b *pipeline.Batch) error {
	var good []entry
	for i, e := range b.Entries {
		en, err := parse(i, e)
		if err != nil {
			b.DeadLetter(i, pipeline.BadInput(err))
			continue
		}
		good = append(good, en)
	}
	exps, err := h.expiry.get(ctx, h.cfg.Redis, h.cfg.Keys, good)
	if err != nil {
		return err
	}
	var known []entry
	for _, en := range good {
		// A message cannot be canceled: watching its flag would cost a
		// Redis read per message every campaign.CancelPoll, for a minute
		// (at 200 messages/s, 60,000 reads a second per process).
		if !en.message {
			canceled, err := h.cancels.Canceled(ctx, en.campaign)
			if err != nil {
				return err
			}
			if canceled {
				continue // acked with the commit, nothing forwarded
			}
		}
		if _, ok := exps[en.campaign]; ok {
			known = append(known, en)
			continue
		}
		// Create publishes the expiry before it emits anything (a message's
		// entries carry it too); without it the campaign was never created
		// here, or expired long ago.
		b.DeadLetter(en.index, fmt.Errorf("campaign %q is unknown in Redis (never created, or expired)", en.campaign))
	}
	lost, err := h.lostMarks(ctx, b.Partition, known, exps)
	if err != nil {
		return err
	}
	kept := known[:0]
	for _, en := range known {
		if lost[en.campaign] && !en.force {
			b.DeadLetter(en.index, errMarksLost(en.campaign, exps[en.campaign]))
			continue
		}
		kept = append(kept, en)
	}
	known = kept
	if len(known) > 0 {
		keys, args := h.scriptCall(b, known, exps)
		b.Commit(dedupeScript, keys, args)
	}
	return nil
}

// parse reads an entry with its codec and checks its campaign id.
func parse(i int, e pipeline.Entry) (entry, error) {
	de, err := pipeline.ParseDedupeEntry(e.Fields)
	en := entry{index: i, id: e.ID, campaign: de.Campaign, rangeID: de.Range, reading: de.Reading, u: de.UsersRaw,
		reached: de.Users, muted: de.Muted, force: de.Force, message: de.Message(), expires: de.ExpiresMs}
	if err != nil {
		return en, err
	}
	if err := campaign.ValidateID(en.campaign); err != nil {
		return en, fmt.Errorf("field %s: %w", pipeline.FieldCampaign, err)
	}
	return en, nil
}

// scriptCall lays out the script's KEYS and ARGV for a batch (see
// dedupeScript).
func (h *Handler) scriptCall(b *pipeline.Batch, entries []entry, exps map[string]int64) ([]string, []string) {
	k := h.cfg.Keys
	p := b.Partition
	keys := []string{k.Stream(b.Lane.Stream(pipeline.StreamDeliver), p)} // the lane of the input
	var camps []string                                                   // per campaign: id, marks expire ms, counters expire ms, check
	index := map[string]int{}                                            // 1-based, as the script numbers campaigns
	now := time.Now().UnixMilli()
	for _, en := range entries {
		i, ok := index[en.campaign]
		if !ok {
			i = len(index) + 1
			index[en.campaign] = i
			// Marks go with the campaign's expiry, but never while
			// entries of it still flow: a mark expired mid-campaign would
			// let a repeat through.
			exp := max(exps[en.campaign], now)
			counters := campaign.CountersExpireMs(exp)
			if en.message {
				counters = campaign.MessageCountersExpireMs(exp)
			}
			keys = append(keys, k.Seen(p, en.campaign), k.Muted(p, en.campaign), k.Stats(p, en.campaign))
			camps = append(camps, en.campaign,
				strconv.FormatInt(campaign.MarksExpireMs(exp), 10), strconv.FormatInt(counters, 10), "0")
		}
		// An expired campaign's marks may go between lostMarks and the
		// script: the script looks again and refuses the batch then
		// (forced entries go through whatever the marks).
		if exps[en.campaign] < now && !en.force {
			camps[4*i-1] = "1"
		}
	}
	args := make([]string, 0, 2+len(camps)+len(entries)*12)
	args = append(args, strconv.Itoa(len(index)))
	args = append(args, camps...)
	args = append(args, strconv.Itoa(len(entries)))
	for _, en := range entries {
		force := "0"
		if en.force {
			force = "1"
		}
		read := ""
		if en.reading != "" {
			read = pipeline.ReadField(en.rangeID, en.reading)
		}
		args = append(args, strconv.Itoa(index[en.campaign]), force, strconv.Itoa(len(en.reached)+len(en.muted)), read, en.u, "", "")
		head := len(args) - 2
		var nr, nm int
		args, nr = appendFragments(args, en.reached)
		args, nm = appendFragments(args, en.muted)
		args[head], args[head+1] = strconv.Itoa(nr), strconv.Itoa(nm)
	}
	return keys, args
}

// expiries caches each campaign's expiry (campaign.HashExpiresMs): it never
// changes, and every batch of a campaign needs it.
type expiries struct {
	mu sync.Mutex
	m  map[string]int64
}

const maxCachedCampaigns = 4096

// get returns the expiry of every campaign of the entries that has one:
// the entry's own (a message's: the API writes it in), else the cached one,
// fetching the missing ones in one pipelined call. Every message is a
// campaign seen once, so the cache never held one: its fetch was a round
// trip before each message's commit (p99 11-35 ms on a busy machine).
func (x *expiries) get(ctx context.Context, c rueidis.Client, keys pipeline.Keys, entries []entry) (map[string]int64, error) {
	out := map[string]int64{}
	for _, en := range entries {
		if en.expires > 0 {
			out[en.campaign] = en.expires
		}
	}
	var missing []string
	x.mu.Lock()
	for _, en := range entries {
		if _, ok := out[en.campaign]; ok {
			continue
		}
		if exp, ok := x.m[en.campaign]; ok {
			out[en.campaign] = exp
		} else if !slices.Contains(missing, en.campaign) {
			missing = append(missing, en.campaign)
		}
	}
	x.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	cmds := make(rueidis.Commands, len(missing))
	for i, id := range missing {
		cmds[i] = c.B().Hget().Key(keys.Campaign(id)).Field(campaign.HashExpiresMs).Build()
	}
	for i, res := range c.DoMulti(ctx, cmds...) {
		exp, err := res.AsInt64()
		if rueidis.IsRedisNil(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("campaign %q expiry: %w", missing[i], err)
		}
		out[missing[i]] = exp
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.m == nil || len(x.m) >= maxCachedCampaigns {
		x.m = map[string]int64{}
	}
	for _, id := range missing {
		if exp, ok := out[id]; ok {
			x.m[id] = exp
		}
	}
	return out, nil
}
