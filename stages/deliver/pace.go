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

// paceScript reserves ARGV[2] ms on the schedule of the campaign whose hash
// is KEYS[1] (field ARGV[1]) and returns {slot start, now}, unix ms of
// Redis's clock, one schedule for every deliver process. A campaign whose
// hash is gone (expired) is not paced: nothing would expire the field.
var paceScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[1]) == 0 then return {now, now} end
local start = math.max(tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or 0, now)
redis.call('HSET', KEYS[1], ARGV[1], start + tonumber(ARGV[2]))
return {start, now}
`)

// putOff is an entry of a capped campaign sent later: at its slot, due
// after the delay.
type putOff struct {
	slotMs int64
	after  time.Duration
}

// pace reserves the slots of the capped campaigns' entries among targets,
// in the entries' order, and returns those put off by entry index. Their
// targets' devices are dropped from pending: this round sends none.
func (h *Handler) pace(ctx context.Context, targets []target, pending [][]device) (map[int]putOff, error) {
	devices := map[int]int{} // entry → its devices to send
	campaigns := map[int]*campaign{}
	slots := map[int]int64{} // entry → the slot it came back with
	start := time.Now()
	for i, t := range targets {
		if t.c.rate <= 0 || t.c.expired(start) {
			continue // an expired campaign's devices are failed at once, unpaced (expiry.go)
		}
		devices[t.entry] += len(pending[i])
		campaigns[t.entry], slots[t.entry] = t.c, t.slotMs
	}
	if len(devices) == 0 {
		return nil, nil
	}
	entries := make([]int, 0, len(devices))
	for e, n := range devices {
		if n > 0 {
			entries = append(entries, e)
		}
	}
	slices.Sort(entries)
	var out map[int]putOff
	for _, e := range entries {
		c := campaigns[e]
		canceled, err := h.life.canceled(ctx, c)
		if err != nil {
			return nil, err
		}
		if canceled {
			continue // its feeder drops its jobs
		}
		slot, now := slots[e], time.Now().UnixMilli()
		if slot == 0 {
			cost := (int64(devices[e])*1000 + int64(c.rate) - 1) / int64(c.rate)
			res, err := paceScript.Exec(ctx, h.rdb, []string{h.keys.Campaign(c.ID)},
				[]string{pipeline.CampaignPacedMs, strconv.FormatInt(cost, 10)}).AsIntSlice()
			if err != nil {
				return nil, fmt.Errorf("pace campaign %s: %w", c.ID, err)
			}
			if len(res) != 2 {
				return nil, fmt.Errorf("pace campaign %s: %d values, want 2", c.ID, len(res))
			}
			slot, now = res[0], res[1]
		}
		if after := time.Duration(slot-now)*time.Millisecond - paceAhead; after > 0 {
			if out == nil {
				out = map[int]putOff{}
			}
			after = min(after, cmp.Or(h.cfg.maxPutOff, maxPutOff))
			if !c.expires.IsZero() { // back at the expiry, to be failed then: not at a slot past it
				after = max(min(after, c.expires.Sub(start)), 0)
			}
			out[e] = putOff{slotMs: slot, after: after}
		}
	}
	for i, t := range targets {
		if _, ok := out[t.entry]; ok {
			pending[i] = nil
		}
	}
	return out, nil
}
