package deliver

import (
	"context"
	"fmt"
	"slices"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// skipDone drops devices already marked for their campaign, and refreshes
// which campaigns have failed, in one pipelined call: a GETRANGE of the
// bytes of each sent-marks chunk the devices' bits fall in (for a message,
// whose devices are a hash field apiece, one HMGET of its fields). What
// was read beside the campaigns' rows (fetched.early: a new message's
// marks and failed reason) is not read again, so a message's first batch
// makes no call here but for forced entries.
func (h *Handler) skipDone(ctx context.Context, p int, targets []target, devs [][]device, f *fetched) ([][]device, error) {
	type span struct {
		c           *campaign
		m           markSet
		chunk       int64
		first, last int64 // byte range of the chunk read
	}
	type spanKey struct {
		c     *campaign
		chunk int64
	}
	spans := map[spanKey]*span{}
	var campaigns []*campaign
	marks := map[*campaign]markSet{}
	var last *span      // devices of neighbouring users share a span: look it up once
	var sentBy []string // the records of forced entries (forcedsent.go)
	for i, t := range targets {
		// An entry's targets are neighbours: its record is listed once.
		if t.forcedSent != "" && (len(sentBy) == 0 || sentBy[len(sentBy)-1] != t.forcedSent) && !slices.Contains(sentBy, t.forcedSent) {
			sentBy = append(sentBy, t.forcedSent)
		}
		m, ok := marks[t.c]
		if !ok {
			m = h.sentMarks(p, t.c)
			marks[t.c] = m
		}
		for _, d := range devs[i] {
			k := spanKey{t.c, m.chunk(d.id)}
			b := m.offset(d.id) / 8
			if last != nil && last.c == k.c && last.chunk == k.chunk {
				last.first, last.last = min(last.first, b), max(last.last, b)
				continue
			}
			s := spans[k]
			last = s
			if s == nil {
				s = &span{c: t.c, m: m, chunk: k.chunk, first: b, last: b}
				spans[k] = s
				last = s
				if !slices.Contains(campaigns, t.c) {
					campaigns = append(campaigns, t.c)
				}
				continue
			}
			s.first, s.last = min(s.first, b), max(s.last, b)
		}
	}
	order := make([]*span, 0, len(spans))
	cmds := make(rueidis.Commands, 0, len(spans)+len(campaigns))
	fields := map[string][]*span{} // a hash key's spans, read by one HMGET
	var hashKeys []string
	bits := make(map[spanKey]string, len(spans))
	for _, s := range spans {
		key, field := s.m.ref(s.chunk)
		if field != "" {
			s.first = 0 // a hash field is read whole: a few bytes
			if early, ok := f.earlyOf(s.c.ID); ok {
				bits[spanKey{s.c, s.chunk}] = early.marks[field]
				continue
			}
			if fields[key] == nil {
				hashKeys = append(hashKeys, key)
			}
			fields[key] = append(fields[key], s)
			continue
		}
		order = append(order, s)
		cmds = append(cmds, h.rdb.B().Getrange().Key(key).Start(s.first).End(s.last).Build())
	}
	for _, key := range hashKeys {
		names := make([]string, len(fields[key]))
		for i, s := range fields[key] {
			_, names[i] = s.m.ref(s.chunk)
		}
		cmds = append(cmds, h.rdb.B().Hmget().Key(key).Field(names...).Build())
	}
	var asked []*campaign // the campaigns whose failed reason is read here
	for _, c := range campaigns {
		if early, ok := f.earlyOf(c.ID); ok {
			if early.failed != "" {
				h.failed.Store(c.ID, early.failed)
			}
			continue
		}
		asked = append(asked, c)
		cmds = append(cmds, h.rdb.B().Hget().Key(h.keys.Campaign(c.ID)).Field(pipeline.CampaignFailed).Build())
	}
	cmds = h.readForcedSent(cmds, sentBy)
	var res []rueidis.RedisResult
	if len(cmds) > 0 {
		res = h.rdb.DoMulti(ctx, cmds...)
	}
	for i, s := range order {
		b, err := res[i].ToString()
		if err != nil && !rueidis.IsRedisNil(err) {
			return nil, fmt.Errorf("read sent marks of %s: %w", s.c.ID, err)
		}
		bits[spanKey{s.c, s.chunk}] = b
	}
	for i, key := range hashKeys {
		vals, err := res[len(order)+i].ToArray()
		if err != nil || len(vals) != len(fields[key]) {
			return nil, fmt.Errorf("read sent marks %s: %d values for %d fields: %w", key, len(vals), len(fields[key]), err)
		}
		for j, s := range fields[key] {
			b, err := vals[j].ToString()
			if err != nil && !rueidis.IsRedisNil(err) {
				return nil, fmt.Errorf("read sent marks of %s: %w", s.c.ID, err)
			}
			bits[spanKey{s.c, s.chunk}] = b
		}
	}
	for i, c := range asked {
		reason, err := res[len(order)+len(hashKeys)+i].ToString()
		if err != nil && !rueidis.IsRedisNil(err) {
			return nil, fmt.Errorf("read campaign %s state: %w", c.ID, err)
		}
		if reason != "" {
			h.failed.Store(c.ID, reason)
		}
	}
	sent, err := parseForcedSent(res[len(order)+len(hashKeys)+len(asked):], sentBy)
	if err != nil {
		return nil, err
	}
	out := make([][]device, len(targets))
	for i, t := range targets {
		ds := devs[i]
		keep := ds[:0:0]
		m := marks[t.c]
		sentBefore := sent[t.forcedSent] // nil unless t is forced
		for j, d := range ds {
			k := spanKey{t.c, m.chunk(d.id)}
			// A marked device is sent again if forced, unless its entry's
			// forced rounds sent it already (a redelivery after a crash).
			if !bitSet(bits[k], spans[k].first, m.offset(d.id)) || t.forces(d.id) && !sentBefore.has(d.id) {
				if len(keep) == j {
					keep = ds[: j+1 : j+1] // all kept so far: share the slice
				} else {
					keep = append(keep, d) // copies on its first growth, ds stays as it is
				}
			}
		}
		out[i] = keep
	}
	return out, nil
}
