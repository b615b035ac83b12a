package pipeline

import "maps"

// resendOnce keeps a forced replay to one resend of each user (or raw
// token) of a campaign. A window holds a user once per copy of it: deliver's
// retry rounds (a user that failed 8 times is in 8 entries), dlq retries and
// earlier replays. Without force the stages' marks suppress the copies; force
// bypasses them, so every copy went out again. One per partition: a user's
// entries all live in its partition.
type resendOnce map[string]map[int64]bool // campaign and field → ids re-injected

// filter returns fv without the ids re-injected already, how many it left
// out, and false when nothing is left to re-inject. An entry whose ids do not
// decode is kept as it is: its stage dead-letters it with the reason.
func (o resendOnce) filter(fv map[string]string) (map[string]string, int64, bool) {
	field := FieldUsers
	if _, ok := fv[FieldTokens]; ok {
		field = FieldTokens
	}
	raw := fv[field]
	if raw == "" {
		return fv, 0, true // a dedupe entry of muted users only: nothing is sent
	}
	key := fv[FieldCampaign] + "\x00" + field
	seen := o[key]
	if seen == nil {
		seen = map[int64]bool{}
		o[key] = seen
	}
	var (
		kept    string
		n, left int64
	)
	if field == FieldTokens {
		ts, err := DecodeTokens(raw)
		if err != nil {
			return fv, 0, true
		}
		keep := ts[:0]
		for _, t := range ts {
			if seen[t.ID] {
				continue
			}
			seen[t.ID] = true
			keep = append(keep, t)
		}
		n, left, kept = int64(len(ts)), int64(len(keep)), EncodeTokens(keep)
	} else {
		ids, err := DecodeIDs(raw)
		if err != nil {
			return fv, 0, true
		}
		keep := ids[:0]
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			keep = append(keep, id)
		}
		n, left, kept = int64(len(ids)), int64(len(keep)), EncodeIDs(keep)
	}
	switch {
	case left == n:
		return fv, 0, true
	case left > 0:
		out := maps.Clone(fv)
		out[field] = kept
		return out, n - left, true
	case fv[FieldMuted] != "":
		out := maps.Clone(fv) // its muted users still count for the campaign
		delete(out, field)
		return out, n, true
	default:
		return nil, n, false
	}
}
