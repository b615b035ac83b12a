package deliver

import (
	"fmt"
	"slices"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// A forced round sends to devices whether marked or not, so once its entry
// is redelivered after a crash (the process died after some of its sends
// were marked, before the ack) the marks cannot tell what it sent already:
// every device was marked before the replay. Each forced entry's rounds
// therefore also record the devices they marked under the entry
// (Keys.ForcedSent, by stream and entry id), in the same markScript call as
// their marks, and a redelivery of the entry skips those as an unforced
// round skips marked devices. So a crash repeats only the sends in flight,
// as for any entry. A forced round's retry is an entry of its own, with its
// own record.
//
// An unforced entry pays nothing for it: no key, no read, no write; its
// marks carry an empty forcedSent, which groupMarks checks beside the
// outcome and reason it compares anyway.

// anyForced reports whether any entry of a batch is forced.
func anyForced(entries []parsed) bool {
	return slices.ContainsFunc(entries, func(p parsed) bool { return p.e.Force || len(p.e.ForceDevices) > 0 })
}

// noteForcedSent gives each forced target of b the record of its entry: a
// target holding a forced copy (repeats.go) is forced, and records under
// its own entry, which is the one its round acks.
func (h *Handler) noteForcedSent(b *pipeline.Batch, targets []target) {
	for i, t := range targets {
		if t.force || len(t.forced) > 0 {
			targets[i].forcedSent = h.keys.ForcedSent(b.Stream, b.Entries[t.entry].ID)
		}
	}
}

// forcedSentMarks are where an entry's forced rounds record the devices
// they marked: fields of one hash, as a message's sent marks.
func forcedSentMarks(key string) markSet {
	return markSet{bits: pipeline.MessageMarkBits, hash: key}
}

// sentByEntry is the record of one forced entry as read (HGETALL): its
// fields' bytes by field.
type sentByEntry map[string]string

// has reports whether the entry's forced rounds marked device id.
func (s sentByEntry) has(id int64) bool {
	if len(s) == 0 {
		return false
	}
	m := forcedSentMarks("the record's") // a hash: ref is its field
	_, field := m.ref(m.chunk(id))
	return bitSet(s[field], 0, m.offset(id))
}

// readForcedSent appends to cmds a read of each record in keys, for
// forcedSentOf.
func (h *Handler) readForcedSent(cmds rueidis.Commands, keys []string) rueidis.Commands {
	for _, key := range keys {
		cmds = append(cmds, h.rdb.B().Hgetall().Key(key).Build())
	}
	return cmds
}

// parseForcedSent reads the answers to readForcedSent's commands.
func parseForcedSent(res []rueidis.RedisResult, keys []string) (map[string]sentByEntry, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	out := make(map[string]sentByEntry, len(keys))
	for i, key := range keys {
		m, err := res[i].AsStrMap()
		if err != nil && !rueidis.IsRedisNil(err) {
			return nil, fmt.Errorf("read devices sent by forced entry %s: %w", key, err)
		}
		out[key] = m
	}
	return out, nil
}

// forcedGroup is the devices of a mark call that forced rounds of one
// entry marked, ascending: what markScript records under key.
type forcedGroup struct {
	key string
	ids []int64
}

// addForced adds device id to the group of key.
func addForced(groups []forcedGroup, key string, id int64) []forcedGroup {
	i := slices.IndexFunc(groups, func(g forcedGroup) bool { return g.key == key })
	if i < 0 {
		return append(groups, forcedGroup{key: key, ids: []int64{id}})
	}
	groups[i].ids = append(groups[i].ids, id)
	return groups
}

// noteForced records, when target i of the round is forced, the entry
// record its marks also go to.
func (r *round) noteForced(i int, t target) {
	if t.forcedSent == "" {
		return
	}
	if r.forcedSent == nil {
		r.forcedSent = make([]string, len(r.results))
	}
	r.forcedSent[i] = t.forcedSent
}

// forcedSentOf is the entry record target i's marks also go to, "" for
// an unforced target.
func (r *round) forcedSentOf(i int) string {
	if r.forcedSent == nil {
		return ""
	}
	return r.forcedSent[i]
}
