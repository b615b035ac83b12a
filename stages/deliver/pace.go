package deliver

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// A campaign's own cap (rate_per_second) is kept by its sends' permits
// (campaignRates). But its entries sit in the deliver stream like any
// other's, and a handler that reads one is held for as long as the cap
// makes its sends take: minutes at a few sends a second. Read as they came,
// a capped campaign's entries held every handler of the stage, and every
// campaign behind them in the stream went at the capped one's pace, which
// its cap was never meant for.
//
// So an entry of a capped campaign reserves, on the campaign's schedule in
// Redis (pipeline.CampaignPacedMs), the time its devices take at the cap,
// and one whose slot starts more than paceAhead from now is put off: it is
// emitted again with its slot (pipeline.FieldSlotMs), due paceAhead before
// the slot, and then sent without reserving again (the slot is Redis's
// clock, compared on its return with the process's: a skew only moves the
// return by as much). The campaign holds a
// handler or two at a time, its people are reached in the order its entries
// came, and its progress moves as they are. A crash between the reservation
// and the ack reserves the redelivered entry again: the schedule then has
// a gap of that entry's time, never an overlap.
//
// Put-off entries wait in the delayed set, which split's backlog mark does
// not count: split cuts a capped campaign only --paced-ahead ahead of this
// schedule (stages/split/paced.go), so the set holds a bounded part of it.
//
// An entry is put off for at most maxPutOff at a time (then again, with the
// same slot): a canceled campaign's entries are not paced but dropped as
// they come back, so the delayed set lets go of them within that time
// instead of holding them until slots that may be hours away.
//
// paceAhead is short: what it admits at once is that much of the campaign's
// sending, spread over as many of its entries, and each entry holds its
// batch's handler until it is sent. At 2 s, a campaign at 500/s in entries
// of 30 users held every handler of the stage again. It is longer than the
// runner's DelayPoll (100 ms), so an entry put off is back before its slot.
const paceAhead = 500 * time.Millisecond

const maxPutOff = time.Minute

// An entry put off comes back paceAhead before its slot: the runner of its
// stream releases it then (pipeline.EmitAt), and the entry's id says when.
// One released more than paceAhead after its slot, its slot lapsed while
// nobody released it (deliver was down), is slotted anew, as if read the
// first time. Sent at once, as the slot said, a restart of deliver 25 s
// long brought back 25 s of a 50/s campaign's entries at once: each held a
// handler until the cap let its sends go, every bulk handler was held, and
// the other campaigns behind them waited for the capped one (the demo
// campaign stood at 73 % for 26 s, and the claims waited for a handler too,
// so a restarted consumer's leftovers aged unclaimed until status said
// nobody claimed them). Slotted anew, the lapsed entries go on at the cap
// after the schedule's end, and the campaign again holds a handler or two.
//
// The release's time, not the read's: an entry released on time but read
// late (a big campaign's backlog ahead of it in the stream) keeps its slot
// and is sent as it says. Judged by the read, every entry of a capped
// campaign read more than paceAhead late was put at the schedule's end,
// came back behind the same backlog, late again: the capped campaign sent
// nothing while the big one had a backlog.

// A campaign's rate may change while it goes out (campaign.SetRate; each
// round paces by the rate it reads then, Handler.ratesOf). Its schedule
// was reserved at the old one: lowered, its entries already put off would
// come back at the old rate's slots, each then held in a handler for as
// long as the new cap makes its sends take (the very thing pacing avoids);
// raised, the next entries would be slotted after the old rate's end of
// the schedule and the campaign would go on at the old rate until then. So
// the schedule keeps the rate it is reserved at (pipeline.CampaignPacedRate)
// and, when the rate read differs, the part of it still ahead is scaled
// from then (pipeline.CampaignPacedAtMs) by old/new: the next entry's slot
// is where the work already reserved ends at the new rate. An entry put
// off carries the rate of its slot (pipeline.FieldSlotRate); coming back
// at another rate, its slot is scaled the same way and it is put off
// again if that is still ahead. Raised, the entries already put off would
// come back only at their old slots, and until then the campaign would go
// at the old rate (the new entries, slotted where the old ones end at the
// new rate, would then overlap them, and the permits hold the excess in
// handlers): so the process whose call raised the schedule's rate calls
// them back (hasten) to be slotted again. Between two changes' entries the
// scaling is from the last change: approximate, never over the cap, which
// the permits keep (campaignRates).

// paceScript reserves ARGV[5] ms at rate ARGV[4] on the schedule of the
// campaign whose hash is KEYS[1] (fields ARGV[1..3]: pipeline.CampaignPacedMs,
// CampaignPacedRate, CampaignPacedAtMs), scaling what is ahead of it first
// when the rate changed, and returns {slot start, now}, unix ms of Redis's
// clock, one schedule for every deliver process. Given a slot already
// reserved (ARGV[6] > 0) at rate ARGV[7], it reserves nothing and returns
// that slot, scaled if it was reserved at another rate. A campaign whose
// hash is gone (expired) is not paced: nothing would expire the fields. A
// third value is 1 when this call raised the schedule's rate.
var paceScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local slot, srate = tonumber(ARGV[6]), tonumber(ARGV[7])
if redis.call('EXISTS', KEYS[1]) == 0 then
  if slot > 0 then return {slot, now, 0} end
  return {now, now, 0}
end
local f = redis.call('HMGET', KEYS[1], ARGV[1], ARGV[2], ARGV[3])
local paced, prate, at = tonumber(f[1]) or 0, tonumber(f[2]) or 0, tonumber(f[3]) or 0
local rate = tonumber(ARGV[4])
local raised = 0
if prate > 0 and rate > prate then raised = 1 end
if prate ~= rate then
  if prate > 0 and paced > now then paced = now + math.ceil((paced - now) * prate / rate) end
  at = now
  redis.call('HSET', KEYS[1], ARGV[1], paced, ARGV[2], rate, ARGV[3], at)
end
if slot > 0 then
  if srate > 0 and srate ~= rate and slot > at then slot = at + math.ceil((slot - at) * srate / rate) end
  return {slot, now, raised}
end
local start = math.max(paced, now)
redis.call('HSET', KEYS[1], ARGV[1], start + tonumber(ARGV[5]))
return {start, now, raised}
`)

// putOff is an entry of a capped campaign sent later: at its slot,
// reserved at rate, due after the delay.
type putOff struct {
	slotMs int64
	rate   int
	after  time.Duration
}

// ratesOf is the own cap now (lifecycle.rate) of each campaign among
// targets, read once for the round: its entries are paced (pace) and
// queued (queueOf) by it, and each of its sends' permits by the one read
// then (lifecycle.wait).
func (h *Handler) ratesOf(ctx context.Context, targets []target) (map[*campaign]int, error) {
	out := map[*campaign]int{}
	for _, t := range targets {
		if _, ok := out[t.c]; ok {
			continue
		}
		rate, err := h.life.rate(ctx, t.c)
		if err != nil {
			return nil, err
		}
		out[t.c] = rate
	}
	return out, nil
}

// pace reserves the slots of the capped campaigns' entries among targets,
// in the entries' order, at their campaigns' rates now, and returns those
// put off by entry index. Their targets' devices are dropped from pending:
// this round sends none.
func (h *Handler) pace(ctx context.Context, entries []pipeline.Entry, targets []target, pending [][]device, rates map[*campaign]int) (map[int]putOff, error) {
	devices := map[int]int{} // entry → its devices to send
	campaigns := map[int]*campaign{}
	slots := map[int]int64{} // entry → the slot it came back with
	slotRates := map[int]int{}
	start := time.Now()
	for i, t := range targets {
		if rates[t.c] <= 0 || t.c.expired(start) {
			continue // an expired campaign's devices are failed at once, unpaced (expiry.go)
		}
		devices[t.entry] += len(pending[i])
		campaigns[t.entry], slots[t.entry], slotRates[t.entry] = t.c, t.slotMs, t.slotRate
	}
	if len(devices) == 0 {
		return nil, nil
	}
	paced := make([]int, 0, len(devices))
	for e, n := range devices {
		if n > 0 {
			paced = append(paced, e)
		}
	}
	slices.Sort(paced)
	var out map[int]putOff
	for _, e := range paced {
		c := campaigns[e]
		canceled, err := h.life.canceled(ctx, c)
		if err != nil {
			return nil, err
		}
		if canceled {
			continue // its feeder drops its jobs
		}
		rate := rates[c]
		slot, now := slots[e], time.Now().UnixMilli()
		if slot > 0 && entries[e].Written().UnixMilli()-slot > paceAhead.Milliseconds() {
			slot = 0 // lapsed before its release: slotted anew (above); both times are Redis's
		}
		if slot == 0 || slotRates[e] > 0 && slotRates[e] != rate {
			// A slot reserved at the rate it has now (or before the
			// rate was kept with it) stands as it is, with no call.
			cost := (int64(devices[e])*1000 + int64(rate) - 1) / int64(rate)
			res, err := paceScript.Exec(ctx, h.rdb, []string{h.keys.Campaign(c.ID)},
				[]string{pipeline.CampaignPacedMs, pipeline.CampaignPacedRate, pipeline.CampaignPacedAtMs,
					strconv.Itoa(rate), strconv.FormatInt(cost, 10), strconv.FormatInt(slot, 10), strconv.Itoa(slotRates[e])}).AsIntSlice()
			if err != nil {
				return nil, fmt.Errorf("pace campaign %s: %w", c.ID, err)
			}
			if len(res) != 3 {
				return nil, fmt.Errorf("pace campaign %s: %d values, want 3", c.ID, len(res))
			}
			slot, now = res[0], res[1]
			if res[2] == 1 {
				h.hasten(ctx, c)
			}
		}
		if after := time.Duration(slot-now)*time.Millisecond - paceAhead; after > 0 {
			if out == nil {
				out = map[int]putOff{}
			}
			after = min(after, cmp.Or(h.cfg.maxPutOff, maxPutOff))
			if !c.expires.IsZero() { // back at the expiry, to be failed then: not at a slot past it
				after = max(min(after, c.expires.Sub(start)), 0)
			}
			out[e] = putOff{slotMs: slot, rate: rate, after: after}
		}
	}
	for i, t := range targets {
		if _, ok := out[t.entry]; ok {
			pending[i] = nil
		}
	}
	return out, nil
}

// hasten calls back the entries of campaign c put off to their slots, in
// every deliver stream of both lanes: its rate was raised, and they wait
// for slots of the old one. Each comes back now, and is slotted again at
// the new rate (paceScript). Failing, they come back at their old slots,
// maxPutOff at most: slower, not wrong, so it is logged, not returned.
func (h *Handler) hasten(ctx context.Context, c *campaign) {
	now, moved := time.Now(), 0
	for _, lane := range []pipeline.Lane{pipeline.Bulk, pipeline.Express} {
		for _, s := range h.keys.Streams(lane.Stream(pipeline.StreamDeliver)) {
			n, err := pipeline.Hasten(ctx, h.rdb, s, now, pipeline.FieldCampaign, c.ID)
			if err != nil {
				h.log.Warn().Err(err).Str("campaign", c.ID).Msg("rate raised: its entries put off come back at their old slots")
				return
			}
			moved += n
		}
	}
	h.log.Info().Str("campaign", c.ID).Int("entries", moved).Msg("rate raised: its entries put off called back")
}
